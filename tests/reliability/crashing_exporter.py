"""The real exporter (``cli.main``) with three crashes forced into it, each carrying
the API key, its signature and a live one-time token in the exception message:

1. the WebSocket library raises an unexpected exception naming the token-bearing URL
   (the session must log it, redacted, and carry on);
2. a background greenlet dies (gevent prints it to the hub's exception stream);
3. shutdown raises, so the exception escapes ``main`` (Python's excepthook prints it).

Used by test_secrets.py: whatever reaches stdout/stderr must be free of secrets.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402

from exporter import cli, rest, session, supervisor  # noqa: E402
from exporter.app import Exporter  # noqa: E402

tokens: list[str] = []
real_token = rest.RestClient.token
real_connect = websocket.create_connection
real_stop = Exporter.stop


def secrets_text(client: rest.RestClient) -> str:
    key = client._api_key
    return f"key {key} sign {rest.sign(b'', key)} token {tokens[-1]}"


def recording_token(self: rest.RestClient) -> str:
    tokens.append(real_token(self))
    recording_token.client = self
    return tokens[-1]


def connect_failing_once(url: str, **kwargs):
    if len(tokens) == 1:
        secret = secrets_text(recording_token.client)
        raise RuntimeError(f"forced crash 1: cannot open {url} ({secret})")
    return real_connect(url, **kwargs)


def dying_watchdog(self: supervisor.Supervisor) -> None:
    while len(tokens) < 2:
        gevent.sleep(0.05)
    raise RuntimeError(f"forced crash 2: {secrets_text(recording_token.client)}")


def failing_stop(self: Exporter) -> None:
    real_stop(self)
    raise RuntimeError(f"forced crash 3: {secrets_text(self.rest)}")


rest.RestClient.token = recording_token
session.websocket.create_connection = connect_failing_once
supervisor.Supervisor.watch_staleness = dying_watchdog
Exporter.stop = failing_stop

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
