"""How long from a write's commit to its webhook's arrival, under write load (issue 11).

`python bench/webhook_delay.py [--seconds 20] [--clients 16] [--workers 2] [--sqlite]`

One run creates a fresh PostgreSQL database (or a SQLite file), starts `drawdown serve` with
webhooks allowed to loopback, registers one endpoint on a receiver in this process that verifies
every signature with `standardwebhooks`, and drives grants and DEBITs from `--clients`
concurrent clients for `--seconds`. Each event's delay is its arrival at the receiver less its
`timestamp` (the writer's clock under the account's lock, just before the commit: so the
figure includes the commit itself). Prints the write rate, the events, the delivery delay p50,
p90, p99 and max, and how many arrived twice, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DRAWDOWN = Path(os.environ.get("DRAWDOWN_BIN") or Path(sys.executable).parent / "drawdown")
ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def receive(secret: str, port: int, found: Any) -> None:
    """The receiver, in a process of its own so the load generator never delays an arrival's
    clock: verifies each delivery and sends (event id, delay in seconds, verified) to `found`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            arrived = time.time()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                found.put(("", 0.0, False))
                self.send_response(400)
                self.end_headers()
                return
            event = json.loads(body, parse_float=Decimal)
            at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
            found.put((event["id"], arrived - at, True))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default 5 refuses a deliverer's 32 connections at once

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def load(base: str, key: str, seconds: float, clients: int, accounts: int) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    done = 0
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=httpx.Limits(max_connections=clients)
    ) as http:

        async def client(n: int) -> None:
            nonlocal done
            i = 0
            while time.monotonic() < stop:
                account = f"acc-{(n + i) % accounts}"
                if i % 2 == 0:
                    body = {
                        "accountId": account,
                        "purpose": "PREPAID",
                        "effectiveFrom": "2026-01-01",
                        "creditAmount": 10,
                        "priority": 1,
                    }
                    answer = await http.post("/credits", json=body)
                else:
                    body = {
                        "invoiceId": f"inv-{n}-{i}",
                        "mode": "DEBIT",
                        "lineItems": [
                            {"entityId": "um.x", "entityType": "USAGE_METER_RATE_CARD", "amount": 1}
                        ],
                    }
                    answer = await http.post(f"/accounts/{account}/credit_applications", json=body)
                assert answer.status_code == 200, answer.text
                done += 1
                i += 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument(
        "--no-endpoint",
        action="store_true",
        help="events recorded, none delivered: the write rate alone",
    )
    args = parser.parse_args()

    name = f"drawdown_hooks_bench_{uuid.uuid4().hex[:8]}"
    folder = tempfile.mkdtemp()
    if args.sqlite:
        url = f"sqlite:///{folder}/bench.db"
    else:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    env = {
        **os.environ,
        "DRAWDOWN_DATABASE_URL": url,
        "DRAWDOWN_WEBHOOK_ALLOW_HTTP": "1",
        "DRAWDOWN_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    server = None
    try:
        made = subprocess.run(
            [DRAWDOWN, "keys", "create", "--org", "bench"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = made.stdout.strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [DRAWDOWN, "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(
            [*command, "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("drawdown serve did not come up")
            time.sleep(0.1)
        hook_port = free_port()
        hook_url = f"http://127.0.0.1:{hook_port}/hooks"
        found: Any = multiprocessing.Queue()
        receiver = None
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            if not args.no_endpoint:
                endpoint = http.post("/webhook_endpoints", json={"url": hook_url})
                assert endpoint.status_code == 201, endpoint.text
                receiver = multiprocessing.Process(
                    target=receive, args=(endpoint.json()["secret"], hook_port, found), daemon=True
                )
                receiver.start()
            for n in range(args.accounts):
                customer = {
                    "id": f"cust-{n}",
                    "name": "Bench",
                    "primaryEmail": "bench@example.test",
                    "address": {"line1": "1 Main St", "country": "US"},
                    "account": {"id": f"acc-{n}", "name": f"Account {n}"},
                }
                assert http.post("/customers", json=customer).status_code == 201
                grant = {
                    "accountId": f"acc-{n}",
                    "purpose": "PREPAID",
                    "effectiveFrom": "2026-01-01",
                    "creditAmount": 1_000_000,
                    "priority": 1,
                }
                assert http.post("/credits", json=grant).status_code == 200
        arrived: list[tuple[str, float, bool]] = []

        def collect() -> None:
            while True:
                try:
                    arrived.append(found.get_nowait())
                except queue.Empty:
                    return

        time.sleep(1.0)  # the set-up's own events
        collect()
        arrived.clear()
        began = time.monotonic()
        writes = asyncio.run(load(base, key, args.seconds, args.clients, args.accounts))
        elapsed = time.monotonic() - began
        settle = time.monotonic() + (0 if args.no_endpoint else 30)
        while True:
            collect()
            if len({i for i, _, ok in arrived if ok}) >= writes or time.monotonic() > settle:
                break
            time.sleep(0.1)
        if receiver is not None:
            receiver.terminate()
        delays = [d * 1000 for _, d, ok in arrived if ok]
        ids = [i for i, _, ok in arrived if ok]
        unique = len(set(ids))
        twice = len(ids) - unique
        unverified = sum(1 for _, _, ok in arrived if not ok)
        result = {
            "engine": "sqlite" if args.sqlite else "postgresql",
            "workers": args.workers,
            "clients": args.clients,
            "writes": writes,
            "writes_per_s": round(writes / elapsed),
            "events_delivered": unique,
            "delivered_twice": twice,
            "unverified": unverified,
        }
        if delays:
            result |= {
                "delay_ms_p50": round(statistics.median(delays), 1),
                "delay_ms_p90": round(percentile(delays, 90), 1),
                "delay_ms_p99": round(percentile(delays, 99), 1),
                "delay_ms_max": round(max(delays), 1),
            }
        for name_, value in result.items():
            print(f"{name_:>18}: {value}")
        print(json.dumps(result))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if not args.sqlite:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
