"""`polaris serve` sends each response in one write (`app.edge.one_write`), seen from a
client's socket: the TCP segments it receives, read from the kernel's own count."""

from __future__ import annotations

import socket
import struct
import sys

import pytest

from tests.harness import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's TCP_INFO"),
]

REQUESTS = 40
# `struct tcp_info`: tcpi_segs_out and tcpi_segs_in (u32 each) follow the counters before them.
_SEGS_OFFSET = 136


def _segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    _out, segs_in = struct.unpack_from("II", info, _SEGS_OFFSET)
    return int(segs_in)


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    assert len(body) == length
    return head, body


def _get(path: str, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return b"GET %s HTTP/1.1\r\nHost: polaris\r\nConnection: %s\r\n\r\n" % (
        path.encode(),
        connection,
    )


def test_each_response_arrives_as_one_segment(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # The handshake's segments are behind us once one answer has come.
        sock.sendall(_get("/healthz"))
        _read_response(sock)
        before = _segments_in(sock)
        for _ in range(REQUESTS):
            sock.sendall(_get("/healthz"))
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200")
            assert body
        received = _segments_in(sock) - before
    # Headers and body written apart arrive as two segments each (80 here); a bare ACK of a
    # request now and then is the rest.
    assert received < REQUESTS * 1.5, f"{received} segments for {REQUESTS} responses"


def test_a_large_answer_and_a_closing_connection_arrive_whole(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_get("/api/openapi.json"))
        head, body = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        # Larger than what one turn holds back, so part of it went out before the turn ended.
        assert len(body) > 64 * 1024
        assert body.rstrip().endswith(b"}")

        sock.sendall(_get("/healthz", close=True))
        head, _ = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in head.lower()
        assert sock.recv(1) == b"", "the server keeps the connection it was asked to close"
