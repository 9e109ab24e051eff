"""Samples of frames not understood: the per-reason budget on an injected clock, and a sample
that is bounded, redacted and escaped so it round-trips to the bytes the exchange sent."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exporter.logs import REDACTED, Redactor
from exporter.samples import (
    FIRST_SAMPLES,
    MAX_SAMPLE_BYTES,
    SAMPLE_EVERY_SECONDS,
    FrameSamples,
    escape,
    render,
    unescape,
)
from tests.support import ManualClock

API_KEY = "api-key-7Hq2Lw9Zx4"
TOKEN = "168b34a3a12370740ff1654f0d0c4726ff1bba8c4675edc0d7553f15e5a2a094"



def redactor(*secrets: str) -> Redactor:
    result = Redactor()
    for secret in secrets:
        result.add(secret)
    return result


def samples(**kwargs) -> tuple[FrameSamples, ManualClock]:
    clock = ManualClock(1000.0)
    return FrameSamples(redactor(API_KEY), clock=clock, **kwargs), clock


# --- the budget -------------------------------------------------------------------------


def test_the_contract_defaults():
    assert (FIRST_SAMPLES, SAMPLE_EVERY_SECONDS, MAX_SAMPLE_BYTES) == (5, 600.0, 512)


def test_the_first_five_then_one_per_ten_minutes_per_reason():
    sampler, clock = samples()
    shown = []
    for second in range(0, 1900):  # one frame per second for 31 minutes 40 s
        clock.now = 1000.0 + second
        if sampler.take("invalid_json", b"{", "frame is not JSON") is not None:
            shown.append(second)
    assert shown == [0, 1, 2, 3, 4, 604, 1204, 1804]


def test_reasons_have_their_own_budgets():
    sampler, clock = samples()
    assert [sampler.due("invalid_json") for _ in range(7)] == [True] * 5 + [False] * 2
    assert [sampler.due("bad_field") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 599.999
    assert not sampler.due("invalid_json")
    clock.now += 0.001
    assert sampler.due("invalid_json")
    assert not sampler.due("invalid_json")
    assert sampler.due("bad_field")  # its own interval, not invalid_json's last sample
    assert not sampler.due("bad_field")
    assert sampler.due("too_large")  # a new reason starts with its first five


def test_a_quiet_reason_is_sampled_at_once_after_the_interval():
    sampler, clock = samples(first=1, every=10)
    assert sampler.due("too_large")
    clock.now += 3600
    assert sampler.due("too_large")
    assert not sampler.due("too_large")


def test_frames_not_shown_are_counted_and_reported_with_the_next_sample():
    sampler, clock = samples(first=2, every=60)
    lines = [sampler.take("bad_field", b"{}", "price is not a number") for _ in range(5)]
    assert [line is not None for line in lines] == [True, True, False, False, False]
    assert sampler.not_shown("bad_field") == 3
    assert sampler.not_shown("invalid_json") == 0
    clock.now += 60
    line = sampler.take("bad_field", b"{}", "price is not a number")
    assert line == ("frame not understood, reason bad_field (price is not a number); "
                    "3 more since the last sample, then at most one per 60 s; 2 bytes, "
                    "secrets redacted, escaped: {}")
    assert sampler.not_shown("bad_field") == 0


def test_the_log_line_of_a_first_sample():
    sampler, _ = samples()
    frame = b'{"id":0,"method":"lastprice_update","data":{"price":"1e999"}}'
    assert sampler.take("bad_field", frame, "price is not a finite number") == (
        "frame not understood, reason bad_field (price is not a finite number); sample 1 of "
        "the first 5, then at most one per 600 s; 61 bytes, secrets redacted, escaped: "
        + frame.decode())


def test_the_log_line_of_a_cut_sample_gives_the_full_length():
    sampler, _ = samples()
    frame = b"[" + b"1," * 40000 + b"1]"
    line = sampler.take("not_an_object", frame)
    head, _, sample = line.partition(", escaped: ")
    assert head == ("frame not understood, reason not_an_object; sample 1 of the first 5, then "
                    "at most one per 600 s; 80003 bytes, cut to 512, secrets redacted")
    assert sample == frame[:512].decode()


@pytest.mark.parametrize("kwargs", [{"first": -1}, {"every": -1}, {"max_bytes": 0}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        FrameSamples(redactor(), **kwargs)


# --- the sample -------------------------------------------------------------------------


@pytest.mark.parametrize(("frame", "expected"), [
    (b'{"a":1}', '{"a":1}'),
    (b"line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"),
    (b"back\\slash \\x41", "back\\\\slash \\\\x41"),
    (b"nul\x00 del\x7f esc\x1b[31m", "nul\\u0000 del\\u007f esc\\u001b[31m"),
    (b"not utf-8: \xff\xfe \xc3", "not utf-8: \\xff\\xfe \\xc3"),
    ("BTC_USDT \u4e2d\u6587 \u00e9".encode(), "BTC_USDT \u4e2d\u6587 \u00e9"),
    ("nbsp\u00a0 line sep\u2028 bom\ufeff".encode(), "nbsp\\u00a0 line sep\\u2028 bom\\ufeff"),
    ("emoji \U0001f600 private \U000f0000".encode(), "emoji \U0001f600 private \\U000f0000"),
    ('{"text":"str, not bytes"}', '{"text":"str, not bytes"}'),
    (bytearray(b'{"a":"\xff"}'), '{"a":"\\xff"}'),
])
def test_escaping(frame, expected):
    sample, cut = render(frame, redactor())
    assert (sample, cut) == (expected, False)
    assert unescape(sample) == (frame.encode() if isinstance(frame, str) else frame)


def test_secrets_are_redacted_wherever_they_appear():
    frame = (f'{{"echo":"{API_KEY}","url":"wss://api-ws.cryptomus.com/ws?token={TOKEN}",'
             f'"t":"{TOKEN}"}}').encode()
    rotating = Redactor()
    rotating.add(API_KEY)
    rotating.add(TOKEN, rotating=True)
    sample, _ = render(frame, rotating)
    assert API_KEY not in sample and TOKEN not in sample
    assert sample == (f'{{"echo":"{REDACTED}","url":"wss://api-ws.cryptomus.com/ws?token='
                      f'{REDACTED}","t":"{REDACTED}"}}')


def test_a_token_parameter_is_redacted_even_when_the_token_is_not_known():
    sample, _ = render(b'{"u":"ws://h/ws?token=abcdef123&x=1"}', redactor())
    assert sample == '{"u":"ws://h/ws?token=<redacted>&x=1"}'


@pytest.mark.parametrize("offset", range(490, 520))
def test_a_secret_across_the_cut_leaves_nothing_of_itself(offset):
    """Redaction happens before the cut: no prefix of the secret survives at the end."""
    frame = ("x" * offset + API_KEY + "y" * 600).encode()
    sample, cut = render(frame, redactor(API_KEY))
    assert cut
    for length in range(3, len(API_KEY) + 1):
        assert API_KEY[:length] not in sample


@pytest.mark.parametrize(("frame", "expected"), [
    ("a" * 511 + "\u00e9", "a" * 511),          # a 2-byte character does not fit: cut before it
    ("a" * 510 + "\u00e9" + "b", "a" * 510 + "\u00e9"),
    ("a" * 510 + "\n" + "b", "a" * 510 + "\\n"),  # an escape fits exactly
    ("a" * 511 + "\n", "a" * 511),               # an escape is never split
    ("a" * 510 + "\x00", "a" * 510),
    ("a" * 510 + "\U0001f600", "a" * 510),       # a 4-byte character is never split
], ids=["2-byte-char", "2-byte-char-fits", "escape-fits", "escape-split", "u-escape",
        "4-byte-char"])
def test_the_cut_falls_between_characters_and_escapes(frame, expected):
    sample, cut = render(frame.encode(), redactor())
    assert (sample, cut) == (expected, True)
    assert len(sample.encode()) <= MAX_SAMPLE_BYTES


def test_exactly_max_bytes_is_not_cut():
    sample, cut = render(b"a" * 512, redactor())
    assert (len(sample), cut) == (512, False)


def test_unescape_refuses_what_escape_never_writes():
    with pytest.raises(ValueError):
        unescape("\\q")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=700) | st.text(max_size=300).map(
    lambda text: text.encode("utf-8", "surrogatepass")))
def test_any_frame_round_trips_and_stays_bounded(frame):
    text = frame.decode("utf-8", "surrogateescape")
    assume(redactor().redact(text) == text)  # e.g. b"TOKEN=0": redacted, not round-tripped
    sample, cut = render(frame, redactor(), max_bytes=10_000)
    assert not cut
    assert sample.isprintable()
    assert unescape(sample) == frame
    assert escape(frame.decode("utf-8", "surrogateescape")) == sample
    short, cut = render(frame, redactor(), max_bytes=64)
    assert short.isprintable()
    assert len(short.encode()) <= 64
    assert frame.startswith(unescape(short))
    assert cut == (short != sample)
