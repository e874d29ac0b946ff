"""After any error the keep-alive connection stays usable, or the answer says
`Connection: close`: checked on raw HTTP/1.1 connections against a real uvicorn server."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from drawdown.api.app import create_app
from drawdown.store.database import Database
from tests.live_server import free_port


@contextmanager
def serving(app: FastAPI) -> Iterator[int]:
    """`app` under a real uvicorn server in a thread; yields its port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


class RawConnection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def get(self, path: str, extra: str = "") -> tuple[int, dict[str, str], bytes]:
        return self.request(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())

    def is_closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _app_with_a_bug(database_url: str) -> FastAPI:
    app = create_app(Database(database_url))

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug the tests planted")

    return app


def test_a_500_says_connection_close_and_the_server_closes_it(database_url: str) -> None:
    with serving(_app_with_a_bug(database_url)) as port:
        conn = RawConnection(port)
        try:
            status, headers, body = conn.get("/bug")
            assert status == 500
            assert body == b'{"message":"internal error; the request was not applied"}'
            assert headers["connection"] == "close"
            assert headers["content-type"] == "application/json"
            conn.sock.settimeout(2)
            assert conn.is_closed_by_server()
        finally:
            conn.close()
        # and the server serves the next connection
        fresh = RawConnection(port)
        try:
            assert fresh.get("/health")[0] == 200
        finally:
            fresh.close()


def test_after_a_503_the_keep_alive_connection_serves_the_next_request() -> None:
    refused = create_app(Database("postgresql://postgres@127.0.0.1:1/none", wait_seconds=1))
    with serving(refused) as port:
        conn = RawConnection(port)
        try:
            for _ in range(3):
                status, headers, body = conn.get("/customers", "Authorization: Bearer dd_x\r\n")
                assert status == 503, body
                assert headers["retry-after"] == "1"
                assert headers.get("connection", "keep-alive") != "close"
                assert body.startswith(b'{"message":')
        finally:
            conn.close()


def test_after_4xx_answers_the_keep_alive_connection_serves_the_next_request(
    database_url: str,
) -> None:
    with serving(_app_with_a_bug(database_url)) as port:
        conn = RawConnection(port)
        try:
            assert conn.get("/customers")[0] == 401
            assert conn.get("/nowhere")[0] == 404
            bad_json = b"POST /customers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer dd_x\r\n"
            bad_json += b"Content-Type: application/json\r\nContent-Length: 1\r\n\r\n{"
            assert conn.request(bad_json)[0] in (400, 401)
            assert conn.get("/health")[0] == 200
        finally:
            conn.close()


def test_a_body_over_1_mib_is_413_and_announces_the_close(database_url: str) -> None:
    with serving(_app_with_a_bug(database_url)) as port:
        conn = RawConnection(port)
        try:
            size = 1024 * 1024 + 1
            status, headers, body = conn.request(
                b"POST /customers HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {size}\r\n\r\n".encode()
            )
            assert status == 413
            assert headers["connection"] == "close"
            assert b"larger than 1048576 bytes" in body
        finally:
            conn.close()
        chunked = RawConnection(port)
        try:
            chunk = b"x" * 65536
            head = (
                b"POST /customers HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunked.sock.sendall(head)
            with_size = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            status = 0
            try:
                for _ in range(17):
                    chunked.sock.sendall(with_size)
                chunked.sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            status, headers, body = chunked.request(b"")
            assert status == 413, body
        finally:
            chunked.close()
