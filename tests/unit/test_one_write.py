"""`OneWritePerTurn`: what one loop turn writes leaves in one write, in order, and nothing
is held past a close, an abort or `FLUSH_AT`. Over a transport that records its writes;
tests/e2e/test_one_write.py sees the result on a real socket."""

from __future__ import annotations

import asyncio

import pytest

from app.edge.one_write import FLUSH_AT, OneWritePerTurn


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.events.append(("abort", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.fixture
async def wrapped() -> tuple[OneWritePerTurn, Recording]:
    inner = Recording()
    return OneWritePerTurn(inner, asyncio.get_running_loop()), inner


async def test_one_turns_writes_leave_together_and_in_order(
    wrapped: tuple[OneWritePerTurn, Recording],
) -> None:
    transport, inner = wrapped
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(bytearray(b"{}"))
    transport.write(b"")
    assert inner.events == []
    assert transport.get_write_buffer_size() == 21 + 7
    await _next_turn()
    assert inner.events == [("write", b"HTTP/1.1 200 OK\r\n\r\n{}")]

    transport.writelines([b"a", memoryview(b"b")])
    await _next_turn()
    assert inner.events[1:] == [("write", b"ab")]


async def test_a_large_turn_is_not_held(wrapped: tuple[OneWritePerTurn, Recording]) -> None:
    transport, inner = wrapped
    transport.write(b"x" * (FLUSH_AT - 1))
    assert inner.events == []
    transport.write(b"y")
    assert inner.events == [("write", b"x" * (FLUSH_AT - 1) + b"y")]
    await _next_turn()
    assert len(inner.events) == 1


async def test_close_sends_what_is_held_first(wrapped: tuple[OneWritePerTurn, Recording]) -> None:
    transport, inner = wrapped
    transport.write(b"last words")
    transport.close()
    await _next_turn()
    assert inner.events == [("write", b"last words"), ("close", b"")]


async def test_abort_and_a_closed_transport_send_nothing(
    wrapped: tuple[OneWritePerTurn, Recording],
) -> None:
    transport, inner = wrapped
    transport.write(b"dropped")
    transport.abort()
    transport.write(b"after the end")
    await _next_turn()
    assert inner.events == [("abort", b"")]
