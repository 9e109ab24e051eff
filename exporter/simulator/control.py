"""The loopback-only ``/_sim/`` control plane (used by ``simulate --fault``,
``simulate --stats`` and the simulator subprocess in tests): inject faults,
read counters, push frames, pause and resume the feed."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs

import orjson

from .faults import Faults
from .replies import Reply, error_reply, json_reply
from .stats import Stats

if TYPE_CHECKING:  # only the type: the CLI imports FAULT_PARAMS without wsproto/h11
    from .hub import Hub

CONTROL_PREFIX = "/_sim/"

# name -> parameters it accepts from the query string, with their types
FAULT_PARAMS: dict[str, dict[str, type]] = {
    "drop_connections": {},
    "go_silent": {"seconds": float},
    "send_garbage": {"kind": str},
    "fail_token": {"count": int, "status": int},
    "refuse_connections": {"seconds": float, "mode": str, "status": int},
    "partial_depth_before_reload": {"market": str},
    "crossed_book": {"market": str},
    "fail_scales": {"market": str, "status": int},
    "restore_scales": {},
    "fail_acks": {"channels": str},
    "clear": {},
}


class Pausable(Protocol):
    def pause(self) -> None: ...

    def resume(self) -> None: ...


class ControlPlane:
    def __init__(self, faults: Faults, stats: Stats, hub: Hub, feed: Pausable) -> None:
        self._faults = faults
        self._stats = stats
        self._hub = hub
        self._feed = feed
        self._actions = {
            ("GET", "stats"): self._stats_action,
            ("POST", "faults"): self._fault,
            ("POST", "push"): self._push,
            ("POST", "push_raw"): self._push_raw,
            ("POST", "pause"): self._pause,
            ("POST", "resume"): self._resume,
        }

    def route(
        self, method: str, target: str, _headers: dict[str, str], body: bytes, peer_host: str
    ) -> Reply:
        if not ipaddress.ip_address(peer_host.partition("%")[0]).is_loopback:
            return error_reply(403, "control endpoints are loopback only")
        path, _, query_text = target.partition("?")
        query = parse_qs(query_text)
        name = path.removeprefix(CONTROL_PREFIX)
        if name.startswith("faults/"):
            name, query = "faults", {**query, "name": [name.removeprefix("faults/")]}
        action = self._actions.get((method, name))
        if action is None:
            return error_reply(404, "unknown control endpoint (POST faults/<name>, push, ...)")
        try:
            return action(query, body)
        except (ValueError, KeyError, TypeError) as error:
            return error_reply(400, str(error))

    def _stats_action(self, _query: dict, _body: bytes) -> Reply:
        return json_reply(200, {**self._stats.as_dict(), "connections": len(self._hub.connections)})

    def _push(self, _query: dict, body: bytes) -> Reply:
        request = orjson.loads(body)
        return json_reply(
            200, {"status": "ok", "sent": self._hub.push(request["channel"], request["data"])}
        )

    def _push_raw(self, _query: dict, body: bytes) -> Reply:
        return json_reply(200, {"status": "ok", "sent": self._hub.push_raw(body)})

    def _pause(self, _query: dict, _body: bytes) -> Reply:
        self._feed.pause()
        return json_reply(200, {"status": "ok"})

    def _resume(self, _query: dict, _body: bytes) -> Reply:
        self._feed.resume()
        return json_reply(200, {"status": "ok"})

    def _fault(self, query: dict, _body: bytes) -> Reply:
        name = query["name"][0].replace("-", "_")
        params = FAULT_PARAMS.get(name)
        if params is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_PARAMS)}")
        kwargs = {key: kind(query[key][0]) for key, kind in params.items() if key in query}
        result = getattr(self._faults, name)(**kwargs)
        return json_reply(200, {"status": "ok", "fault": name, "result": result})
