"""The RFC 6455 server-frame decoder (exporter/wsframes.py): every rule, any split of reads."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import wsframes
from exporter.state import ERROR_REASONS
from exporter.wsframes import (
    FRAME_ERROR_REASONS,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Binary,
    Close,
    FrameDecoder,
    FrameError,
    Ping,
    Pong,
    TooLarge,
)

CAP = 4 * 1024 * 1024
LENGTH_FORMS = {7: 125, 16: 0xFFFF, 64: 1 << 63}  # length field width -> the most it holds


def frame(payload: bytes = b"", opcode: int = OP_TEXT, *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = None, width: int | None = None) -> bytes:
    """A frame as a server (or, with ``mask``, a client) writes it; ``width`` forces the
    length field's size (7, 16 or 64 bits), else the smallest that holds the length."""
    n = len(payload)
    if width is None:
        width = next(bits for bits, most in LENGTH_FORMS.items() if n <= most)
    head = bytes(((0x80 if fin else 0) | rsv << 4 | opcode,))
    mask_bit = 0x80 if mask else 0
    if width == 7:
        head += bytes((mask_bit | n,))
    elif width == 16:
        head += bytes((mask_bit | 126,)) + struct.pack(">H", n)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack(">Q", n)
    if mask:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        head += mask
    return head + payload


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return frame(b"" if code is None else struct.pack(">H", code) + reason, OP_CLOSE)


def decode(stream: bytes, reads: list[int] | None = None, *, cap: int = CAP,
           limit: int | None = None) -> list:
    """Feed ``stream`` in reads of the given sizes (the rest in one), collecting events."""
    decoder = FrameDecoder(cap)
    events: list = []
    pos = 0
    for size in [*(reads or []), len(stream)]:
        decoder.feed(stream[pos:pos + size])
        pos += size
        while decoder.ready:
            events += decoder.events(limit or 1 << 62)
        if pos >= len(stream):
            break
    return events


def error_reason(stream: bytes, cap: int = CAP) -> str:
    with pytest.raises(FrameError) as raised:
        decode(stream, cap=cap)
    assert raised.value.reason in FRAME_ERROR_REASONS
    return raised.value.reason


# --- a valid stream, any split ----------------------------------------------------------

payloads = st.binary(max_size=300) | st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65535,
                                                      b"w" * 65536])


@st.composite
def messages(draw) -> tuple[bytes, list]:
    """A message (text or binary, whole or in fragments with control frames between them)
    as wire bytes, and the events it decodes to."""
    payload = draw(payloads)
    binary = draw(st.booleans())
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    wire, controls = b"", []
    for index, part in enumerate(parts):
        opcode = (OP_BINARY if binary else OP_TEXT) if index == 0 else OP_CONTINUATION
        wire += frame(part, opcode, fin=index == len(parts) - 1,
                      width=draw(st.sampled_from([None, 16, 64])) if len(part) < 126 else None)
        if index < len(parts) - 1 and draw(st.booleans()):
            control = draw(st.binary(max_size=125))
            ping = draw(st.booleans())
            wire += frame(control, OP_PING if ping else OP_PONG)
            controls.append(Ping(control) if ping else Pong(control))
    return wire, [*controls, Binary(payload) if binary else payload]


@st.composite
def streams(draw) -> tuple[bytes, list]:
    wire, expected = b"", []
    for message_wire, events in draw(st.lists(messages(), max_size=8)):
        wire += message_wire
        expected += events
    if draw(st.booleans()):
        wire += close_frame(1000, b"bye") + frame(b"after the close")
        expected.append(Close(1000, "bye"))
    return wire, expected


@settings(max_examples=300, deadline=None)
@given(streams(), st.lists(st.integers(1, 70_000), max_size=20),
       st.sampled_from([None, 1, 3]))
def test_any_split_of_a_valid_stream_into_reads_yields_the_same_events(stream, reads, limit):
    wire, expected = stream
    assert decode(wire, reads, limit=limit) == expected


@settings(max_examples=100, deadline=None)
@given(streams())
def test_byte_by_byte_yields_the_same_events(stream):
    wire, expected = stream
    assert decode(wire, [1] * len(wire)) == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10),
       st.integers(0, 300))
def test_arbitrary_bytes_raise_nothing_but_a_frame_error(data, reads, cap):
    try:
        decode(data, reads, cap=cap)
    except FrameError as error:
        assert error.reason in FRAME_ERROR_REASONS


def test_every_split_point_of_every_header_form_yields_the_same_events():
    wire = (frame(b"a") + frame(b"b" * 126) + frame(b"c", width=64) + frame(b"d", OP_PING)
            + frame(b"e" * 200, width=64) + frame(b"f", fin=False) + frame(b"g", OP_CONTINUATION))
    expected = [b"a", b"b" * 126, b"c", Ping(b"d"), b"e" * 200, b"fg"]
    for first in range(1, len(wire)):
        for second in (1, 2, 3, 9):
            assert decode(wire, [first, second]) == expected, (first, second)


def test_every_frame_error_reason_is_a_counted_message_error_reason():
    assert set(FRAME_ERROR_REASONS) <= set(ERROR_REASONS)


def test_text_messages_are_bytes_and_binary_ones_are_wrapped():
    events = decode(frame(b'{"a":1}') + frame(b"\x00\xff", OP_BINARY))
    assert events == [b'{"a":1}', Binary(b"\x00\xff")]
    assert type(events[0]) is bytes


# --- lengths ------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "width"), [
    (0, 7), (125, 7), (126, 16), (65535, 16), (65536, 64), (5, 16), (5, 64)])
def test_7_16_and_64_bit_lengths(size, width):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert decode(frame(payload, width=width) + frame(b"next")) == [payload, b"next"]


def test_a_64_bit_length_with_its_top_bit_set_is_refused_from_the_header():
    header = bytes((0x81, 127)) + struct.pack(">Q", 1 << 63)
    assert error_reason(header) == wsframes.LENGTH_OVERFLOW


# --- the message size cap -----------------------------------------------------------------


def test_a_2_gib_frame_is_dropped_as_it_arrives_without_buffering_it():
    size = 2 * 1024**3
    decoder = FrameDecoder(CAP)
    chunk = bytes(256 * 1024)
    tracemalloc.start()
    try:
        decoder.feed(bytes((0x81, 127)) + struct.pack(">Q", size) + chunk[:1000])
        assert decoder.events() == []
        for _ in range(size // len(chunk) - 1):
            decoder.feed(chunk)
        decoder.feed(chunk[:len(chunk) - 1000] + frame(b"after"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoder.events() == [TooLarge(size), b"after"]
    assert peak < 2 * len(chunk)  # the feeds' own slices; nothing of the 2 GiB was kept


def test_a_frame_over_the_cap_is_reported_and_the_next_message_decoded():
    wire = frame(b"x" * 101) + frame(b"ok") + frame(b"y" * 100)
    for reads in ([], [1] * len(wire), [3, 50, 60]):
        assert decode(wire, reads, cap=100) == [TooLarge(101), b"ok", b"y" * 100]


def test_a_fragmented_message_over_the_cap_is_dropped_as_a_whole():
    wire = (frame(b"a" * 60, fin=False) + frame(b"ping", OP_PING)
            + frame(b"b" * 60, OP_CONTINUATION, fin=False) + frame(b"c", OP_CONTINUATION)
            + frame(b"ok"))
    assert decode(wire, cap=100) == [Ping(b"ping"), TooLarge(121), b"ok"]
    assert decode(wire, [70, 10], cap=100) == [Ping(b"ping"), TooLarge(121), b"ok"]


# --- control frames -------------------------------------------------------------------------


def test_pings_and_pongs_carry_their_payload_even_between_fragments():
    wire = (frame(b"hel", fin=False) + frame(b"p1", OP_PING) + frame(b"", OP_PONG)
            + frame(b"lo", OP_CONTINUATION))
    assert decode(wire) == [Ping(b"p1"), Pong(b""), b"hello"]


@pytest.mark.parametrize(("code", "reason", "expected"), [
    (1000, b"", Close(1000, "")), (4001, "über".encode(), Close(4001, "über")),
    (None, b"", Close(None, "")), (1011, b"x" * 123, Close(1011, "x" * 123))])
def test_a_close_carries_its_code_and_reason_and_ends_decoding(code, reason, expected):
    decoder = FrameDecoder(CAP)
    decoder.feed(frame(b"before") + close_frame(code, reason) + frame(b"after"))
    assert decoder.events() == [b"before", expected]
    assert decoder.closed and not decoder.ready
    decoder.feed(frame(b"later"))
    assert decoder.events() == []


@pytest.mark.parametrize("payload", [
    b"\x03", struct.pack(">H", 999), struct.pack(">H", 1005), struct.pack(">H", 1006),
    struct.pack(">H", 2000), struct.pack(">H", 5000), struct.pack(">H", 1000) + b"\xff\xfe"])
def test_an_invalid_close_frame_is_a_protocol_error(payload):
    assert error_reason(frame(payload, OP_CLOSE)) == wsframes.INVALID_CLOSE_FRAME


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_a_fragmented_control_frame_is_a_protocol_error(opcode):
    assert error_reason(frame(b"", opcode, fin=False)[:2]) == wsframes.FRAGMENTED_CONTROL_FRAME


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_a_control_frame_over_125_bytes_is_a_protocol_error(opcode):
    assert error_reason(frame(b"x" * 126, opcode)[:4]) == wsframes.CONTROL_FRAME_TOO_LONG
    assert decode(frame(b"x" * 125, OP_PING)) == [Ping(b"x" * 125)]


# --- header rules ---------------------------------------------------------------------------


def test_a_masked_server_frame_is_a_protocol_error_from_its_header():
    assert error_reason(frame(b"hi", mask=b"abcd")[:2]) == wsframes.MASKED_FRAME
    assert error_reason(frame(b"x" * 200, OP_PING, mask=b"abcd")[:2]) == wsframes.MASKED_FRAME


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_are_a_protocol_error_without_extensions(rsv):
    assert error_reason(frame(b"hi", rsv=rsv)[:2]) == wsframes.RESERVED_BITS


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_a_protocol_error(opcode):
    assert error_reason(frame(b"hi", opcode)[:2]) == wsframes.RESERVED_OPCODE


def test_a_continuation_without_a_message_to_continue_is_a_protocol_error():
    assert error_reason(frame(b"x", OP_CONTINUATION)) == wsframes.UNEXPECTED_CONTINUATION
    whole = frame(b"done")
    assert error_reason(whole + frame(b"x", OP_CONTINUATION)) == wsframes.UNEXPECTED_CONTINUATION


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_a_new_data_frame_inside_a_fragmented_message_is_a_protocol_error(opcode):
    wire = frame(b"start", fin=False) + frame(b"new", opcode)
    assert error_reason(wire) == wsframes.INTERRUPTED_MESSAGE
    assert error_reason(wire, cap=3) == wsframes.INTERRUPTED_MESSAGE  # while dropping it too


def test_events_before_a_protocol_error_are_returned_then_it_is_raised_for_good():
    decoder = FrameDecoder(CAP)
    decoder.feed(frame(b"ok") + frame(b"p", OP_PING) + frame(b"x", 3) + frame(b"never"))
    assert decoder.events() == [b"ok", Ping(b"p")]
    assert decoder.ready
    with pytest.raises(FrameError, match="reserved_opcode"):
        decoder.events()
    with pytest.raises(FrameError, match="reserved_opcode"):
        decoder.events()


# --- batches ------------------------------------------------------------------------------


def test_a_limit_bounds_the_frames_decoded_per_call_and_the_rest_stays_ready():
    decoder = FrameDecoder(CAP)
    decoder.feed(b"".join(frame(str(i).encode()) for i in range(10)) + frame(b"part")[:3])
    batches = []
    while decoder.ready:
        batches.append(decoder.events(4))
    assert batches == [[b"0", b"1", b"2", b"3"], [b"4", b"5", b"6", b"7"], [b"8", b"9"]]
    decoder.feed(frame(b"part")[3:])
    assert decoder.events() == [b"part"]
