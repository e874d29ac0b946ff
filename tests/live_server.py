"""A real `drawdown serve` in a subprocess, for the conformance and concurrency tests."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

DRAWDOWN = str(Path(sys.executable).parent / "drawdown")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DRAWDOWN_DATABASE_URL": database_url}


def create_key(database_url: str, org: str, read_only: bool = False) -> str:
    args = [DRAWDOWN, "keys", "create", "--org", org] + (["--read-only"] if read_only else [])
    done = subprocess.run(
        args, env=server_env(database_url), capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    database_url: str


@contextmanager
def live_server(
    database_url: str, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    port = free_port()
    process = subprocess.Popen(
        [DRAWDOWN, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={**server_env(database_url), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # 4 workers on a busy 2-core machine take a while
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"drawdown serve exited early:\n{output}")
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("drawdown serve did not answer /health within 60 s")
            time.sleep(0.1)
        yield LiveServer(base_url, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
