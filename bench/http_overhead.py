"""The HTTP layer's own CPU cost per write, without a database (issue 8).

`python bench/http_overhead.py [--requests N] [--rounds N] [--old REV]`

Drives the whole ASGI app in-process (middleware, routing, key check, body decoding, handler,
rendering) with a stub `Writes` that answers fixed records and a stub key cache, and measures
the process CPU time per request of a grant, a debit and a trivial route (GET /health) of the
same app. It does this for the working tree and for REV (default: the last commit whose writes
were FastAPI routes with pydantic bodies), each in its own process, exported with `git archive`
so no other worktree is touched. Prints a table and, as its last line, one JSON object of
ratios, each from figures measured in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OLD = "e6f84f0"  # before the endpoints of api/endpoints.py

GRANT = json.dumps(
    {
        "accountId": "acme-main",
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": "2026-01-01",
        "creditAmount": 100.1,
        "priority": 1,
        "idempotencyKey": "acme-prepaid-1",
    }
).encode()
DEBIT = json.dumps(
    {
        "invoiceId": "inv-2026-11",
        "mode": "DEBIT",
        "lineItems": [
            {"entityId": "um.api-calls", "entityType": "USAGE_METER_RATE_CARD", "amount": 30.05}
        ],
    }
).encode()
ROUTES = {
    "trivial": ("GET", "/health", b""),
    "grant": ("POST", "/credits", GRANT),
    "debit": ("POST", "/accounts/acme-main/credit_applications", DEBIT),
}


def _app() -> Any:
    """The app with stubs for the key cache and the writes: what is left is the HTTP layer."""
    from drawdown.api.app import create_app
    from drawdown.clock import FixedClock
    from drawdown.ledger.allocation import EntityType
    from drawdown.ledger.application import ApplicationMode, ApplicationStatus
    from drawdown.ledger.credit import CreditAmounts, CreditStatus
    from drawdown.ledger.records import Allocation, ApplicationRecord, AppliedLine, CreditRecord
    from drawdown.services.keys import Principal
    from drawdown.store.database import Database

    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    credit = CreditRecord(
        seq=1,
        org_seq=1,
        account_seq=1,
        id="cred.00000000001.abcde",
        account_id="acme-main",
        customer_id="acme",
        credit_unit="USD",
        purpose="PREPAID_CREDIT",
        applicable_entity_ids=None,
        effective_from=date(2026, 1, 1),
        effective_until=None,
        priority=1,
        grantor_id=None,
        idempotency_key="acme-prepaid-1",
        request_hash="",
        status=CreditStatus.ACTIVE,
        amounts=CreditAmounts(Decimal("100.1")),
        created_at=now,
        updated_at=now,
    )
    debited = ApplicationRecord(
        account_id="acme-main",
        invoice_id="inv-2026-11",
        status=ApplicationStatus.DEBITED,
        mode=ApplicationMode.DEBIT,
        as_of=date(2026, 11, 24),
        lines=[
            AppliedLine(
                "um.api-calls",
                EntityType.USAGE_METER_RATE_CARD,
                Decimal("30.05"),
                (Allocation(credit.id, Decimal("30.05")),),
            )
        ],
        created_at=now,
        updated_at=now,
    )

    class Keys:
        async def principal(self, _db: Any, _key: str) -> Principal:
            return Principal(org_seq=1, read_only=False)

    class Writes:
        async def grant(self, _org: int, requests: list[Any]) -> list[CreditRecord]:
            return [credit for _ in requests]

        async def apply(self, _org: int, _account: str, _request: Any) -> ApplicationRecord:
            return debited

    app = create_app(Database("sqlite:///:memory:"), FixedClock(now))
    app.state.keys = Keys()
    app.state.writes = Writes()
    return app


async def _request(app: Any, method: str, path: str, body: bytes) -> int:
    received = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"host", b"bench"), (b"authorization", b"Bearer key")]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return status


async def _measure(requests: int, rounds: int) -> dict[str, float]:
    """Median over rounds of the CPU microseconds per request, routes interleaved."""
    app = _app()
    for name, (method, path, body) in ROUTES.items():
        status = await _request(app, method, path, body)
        assert status == 200, (name, status)
        for _ in range(requests // 4):  # warm up
            await _request(app, method, path, body)
    samples: dict[str, list[float]] = {name: [] for name in ROUTES}
    for _ in range(rounds):
        for name, (method, path, body) in ROUTES.items():
            start = time.process_time()
            for _ in range(requests):
                await _request(app, method, path, body)
            samples[name].append((time.process_time() - start) / requests * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def _export(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run(src: Path, requests: int, rounds: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--measure", "--requests", str(requests)]
    command += ["--rounds", str(rounds)]
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    figures: dict[str, float] = json.loads(out.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per route and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", default=OLD, help="the revision to compare with")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        import drawdown

        print(f"measuring {drawdown.__file__}", file=sys.stderr)
        print(json.dumps(asyncio.run(_measure(args.requests, args.rounds))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = _run(_export(args.old, Path(tmp)), args.requests, args.rounds)
    new = _run(REPO / "src", args.requests, args.rounds)
    print(f"{'CPU µs per request':<20}{'old (' + args.old + ')':>16}{'new':>10}{'new/old':>10}")
    for name in ROUTES:
        print(f"{name:<20}{old[name]:>16.1f}{new[name]:>10.1f}{new[name] / old[name]:>10.2f}")
    ratios = {f"{name} new/old": round(new[name] / old[name], 3) for name in ("grant", "debit")} | {
        f"{name} over trivial, {tree}": round(figures[name] / figures["trivial"], 2)
        for tree, figures in (("old", old), ("new", new))
        for name in ("grant", "debit")
    }
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
