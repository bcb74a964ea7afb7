"""The exec console's marker scanner: what the user sees, and when the session is ready and ends."""

from __future__ import annotations

from isobox.drivers.vm.exec_tty import READY, MarkerScanner

SID = "0123456789ab"


def marker(value: str, session: str = SID) -> bytes:
    return f"\x1b]isobox;{session};{value}\x07".encode()


def test_ready_and_end_in_one_chunk_with_output_between() -> None:
    scanner = MarkerScanner(SID)
    shown, events = scanner.feed(b"banner" + marker("ready") + b"hello\r\n" + marker("3") + b"ignored")
    assert shown == b"bannerhello\r\n" and events == [READY, 3]


def test_a_marker_split_across_chunks_is_held_then_taken() -> None:
    scanner = MarkerScanner(SID)
    whole = b"out" + marker("42")
    seen = b""
    for cut in range(len(whole)):
        byte = whole[cut : cut + 1]
        shown, events = scanner.feed(byte)
        seen += shown
        if events:
            assert events == [42] and cut == len(whole) - 1
    assert seen == b"out"


def test_other_escapes_and_other_sessions_pass_through_at_once() -> None:
    scanner = MarkerScanner(SID)
    colour = b"\x1b[31mred\x1b[0m"
    assert scanner.feed(colour) == (colour, [])
    stale = marker("0", session="ffffffffffff")
    assert scanner.feed(stale) == (stale, [])
    # An escape that is not ours is shown without waiting for more output.
    assert scanner.feed(b"prompt \x1b[6n") == (b"prompt \x1b[6n", [])
    # A prefix of our marker is held back until it is decided.
    assert scanner.feed(b"x\x1b]iso") == (b"x", [])
    assert scanner.feed(b"morph") == (b"\x1b]isomorph", [])
