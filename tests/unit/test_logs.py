"""Log formats (text, json, logfmt) and secret redaction in each of them."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from exporter.cli import build_parser
from exporter.logs import LOG_FORMATS, LogfmtFormatter, Redactor, logfmt_value, setup_logging
from exporter.settings import Settings

SECRET = "KEY-3f9a1c7e5b2d4f60-KEY"
TOKEN = "tok-8d1e55aa90c3"
# One logfmt pair: a bare value, or a quoted one with backslash escapes.
_PAIR = re.compile(r'(?P<key>[a-z]+)=(?P<value>"(?:[^"\\]|\\.)*"|[^\s"=]+)(?: |$)')


def parse_logfmt(line: str) -> dict[str, str]:
    """Decode one logfmt line; fails unless the whole line is key=value pairs."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(line):
        match = _PAIR.match(line, position)
        assert match, f"not logfmt at column {position}: {line[position:position + 40]!r}"
        value = match["value"]
        if value.startswith('"'):
            value = json.loads(value)  # Go's quoting is a subset of JSON's string syntax here
        fields[match["key"]] = value
        position = match.end()
    return fields


@pytest.fixture
def logger_output(request):
    """Root logging set up in the requested format, writing into a string buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    redactor = Redactor()
    redactor.add(SECRET)
    redactor.add(TOKEN, rotating=True)
    setup_logging("debug", request.param, redactor, stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _record(level: int, msg: str, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("exporter.session", level, "/app/exporter/session.py", 88,
                               msg, args, None)
    record.created = 1767323045.678
    record.msecs = 678.0
    return record


def test_logfmt_line_is_prometheus_shaped() -> None:
    line = LogfmtFormatter().format(_record(logging.INFO, "subscribed to %d channels", 7))
    assert line == ('ts=2026-01-02T03:04:05.678Z level=info caller=session.py:88 '
                    'logger=exporter.session msg="subscribed to 7 channels"')


@pytest.mark.parametrize(("level", "name"), [(logging.DEBUG, "debug"), (logging.INFO, "info"),
                                             (logging.WARNING, "warn"), (logging.ERROR, "error"),
                                             (logging.CRITICAL, "error")])
def test_logfmt_levels_are_prometheus_level_names(level: int, name: str) -> None:
    assert parse_logfmt(LogfmtFormatter().format(_record(level, "x")))["level"] == name


@pytest.mark.parametrize(("value", "encoded"), [
    ("plain", "plain"),
    ("", '""'),
    ("two words", '"two words"'),
    ("a=b", '"a=b"'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("line\nbreak\ttab\r", r'"line\nbreak\ttab\r"'),
    ("bell\x07", r'"bell\u0007"'),
    ("naïve", "naïve"),
])
def test_logfmt_values_are_quoted_and_escaped_as_go_logfmt_does(value: str, encoded: str) -> None:
    assert logfmt_value(value) == encoded
    assert parse_logfmt(f"k={encoded}") == {"k": value}


@pytest.mark.parametrize("logger_output", ["logfmt"], indirect=True)
def test_a_traceback_stays_on_one_logfmt_line(logger_output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom \"quoted\" = sign")
    except RuntimeError:
        logging.getLogger("exporter.app").exception("handler failed for %s", "BTC_USDT")
    lines = logger_output.getvalue().splitlines()
    assert len(lines) == 1
    fields = parse_logfmt(lines[0])
    assert fields["level"] == "error"
    assert fields["logger"] == "exporter.app"
    assert fields["caller"].startswith("test_logs.py:")
    assert fields["msg"].startswith("handler failed for BTC_USDT\nTraceback (most recent call")
    assert fields["msg"].endswith('RuntimeError: boom "quoted" = sign')


@pytest.mark.parametrize("logger_output", LOG_FORMATS, indirect=True)
def test_secrets_are_redacted_in_every_format(logger_output: io.StringIO) -> None:
    log = logging.getLogger("exporter.session")
    log.warning("connect to wss://example/ws?token=%s failed", "unregistered-token-77")
    log.debug("signed with %s and token %s", SECRET, TOKEN)
    try:
        raise ValueError(f"server rejected key {SECRET}")
    except ValueError:
        log.exception("request failed")
    output = logger_output.getvalue()
    for secret in (SECRET, TOKEN, "unregistered-token-77"):
        assert secret not in output
    assert output.count("<redacted>") >= 4


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'; expected one of text, json"):
        setup_logging("info", "xml", Redactor(), stream=io.StringIO())


def test_settings_accept_exactly_the_log_formats() -> None:
    field = Settings.model_fields["log_format"]
    assert field.annotation.__args__ == LOG_FORMATS


def test_help_lists_the_level_and_format_choices() -> None:
    help_text = " ".join(build_parser().format_help().split())
    assert "--log.level LOG_LEVEL Log level: debug, info, warning or error." in help_text
    assert "--log.format LOG_FORMAT Log format: text, json or logfmt" in help_text
