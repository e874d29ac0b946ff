"""What a usage burn costs, in process, on PostgreSQL (issue 9): per account and per event.

`python bench/burn_cost.py [--accounts 32] [--rounds 20] [--profile [--profile-size 1]]`

One run creates a fresh PostgreSQL database, migrates it, and drives the API in this process
(no server, no applier running): it makes the accounts, one credit each and the bench's meter,
then, for 1 and for 20 events per account, ingests a batch and burns every account in one
`Writes.burn` call, round after round. It prints the CPU time of this process (Python: the
decisions, the load's parsing, the save's arguments) and the wall time (with PostgreSQL's share)
per account burned, for each size, and the cost per account and per event those two sizes imply
(a straight line through them). The first three rounds of each size warm up and are not
counted. With `--profile`, cProfile's top functions of the 20-event rounds follow, or of the
one-event rounds with `--profile-size 1` (the profiler roughly doubles the Python figures while
it runs, so they are measured without it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text

from drawdown.api.app import create_app
from drawdown.services.keys import create_key
from drawdown.store.database import Database
from drawdown.store.migrate import upgrade
from run import PG_HOST, PG_PORT, PG_USER, fresh_database  # bench/run.py, beside this file

WARMUP_ROUNDS = 3
SIZES = (1, 20)


def database_url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


async def call(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    answer = await client.post(path, json=body)
    if answer.status_code >= 300:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")


async def seed(client: httpx.AsyncClient, accounts: int) -> None:
    for n in range(accounts):
        customer = {
            "id": f"cust-{n}",
            "name": f"Bench {n}",
            "primaryEmail": "bench@example.test",
            "address": {},
            "account": {"id": f"acc-{n}", "name": f"Bench account {n}"},
        }
        await call(client, "/customers", customer)
        credit = {
            "accountId": f"acc-{n}",
            "purpose": "PREPAID_CREDIT",
            "effectiveFrom": "2026-01-01",
            "creditAmount": 1_000_000_000,
            "priority": 1,
        }
        await call(client, "/credits", credit)
    meter = {
        "id": "um.bench",
        "name": "Bench tokens",
        "eventSchemaName": "bench_call",
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 2, "perQuantity": 1_000_000},
    }
    await call(client, "/usage_meters", meter)


def events(round_: int, accounts: int, size: int) -> list[dict[str, Any]]:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        {
            "schemaName": "bench_call",
            "id": f"e-{size}-{round_}-{n}-{k}",
            "timestamp": stamp,
            "accountId": f"acc-{n}",
            "attributes": [{"name": "tokens", "value": str(random.randint(1, 1000))}],
            "dimensions": {"model": "large"},
        }
        for n in range(accounts)
        for k in range(size)
    ]


async def measure(
    args: argparse.Namespace, url: str, profiler: cProfile.Profile | None
) -> dict[int, tuple[float, float]]:
    """Per size: (CPU us, wall us) per account burned."""
    db = Database(url)
    try:
        async with db.write() as conn:
            key = await create_key(conn, "bench", False, datetime.now(UTC))
            app = create_app(db)
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            await seed(client, args.accounts)
            async with db.read() as conn:
                org = (await conn.execute(text("SELECT min(org_seq) FROM accounts"))).scalar_one()
            names = [(int(org), f"acc-{n}") for n in range(args.accounts)]
            writes = app.state.writes
            costs = {}
            for size in SIZES:
                cpu = wall = 0.0
                for round_ in range(args.rounds + WARMUP_ROUNDS):
                    await call(client, "/ingestBatch", {"events": events(round_, len(names), size)})
                    counted = round_ >= WARMUP_ROUNDS
                    profiling = profiler is not None and counted and size == args.profile_size
                    cpu_before, wall_before = time.process_time(), time.perf_counter()
                    if profiling:
                        assert profiler is not None
                        profiler.enable()
                    outcomes = await writes.burn(names, 5000)
                    if profiling:
                        assert profiler is not None
                        profiler.disable()
                    if counted:
                        cpu += time.process_time() - cpu_before
                        wall += time.perf_counter() - wall_before
                    applied = sum(outcome.applied for outcome in outcomes.values())
                    if applied != len(names) * size:
                        raise RuntimeError(f"{applied} events applied, not {len(names) * size}")
                burns = args.rounds * len(names)
                costs[size] = (1e6 * cpu / burns, 1e6 * wall / burns)
            return costs
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=32, help="accounts per burn (32)")
    parser.add_argument("--rounds", type=int, default=20, help="counted rounds per size (20)")
    parser.add_argument("--profile", action="store_true", help="cProfile one size's rounds")
    parser.add_argument(
        "--profile-size",
        type=int,
        choices=SIZES,
        default=SIZES[-1],
        help=f"the size --profile watches ({SIZES[-1]} events an account)",
    )
    args = parser.parse_args()
    with fresh_database() as name:
        upgrade(database_url(name))
        costs = asyncio.run(measure(args, database_url(name), None))
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        with fresh_database() as name:  # a run of its own: its figures are not the ones shown
            upgrade(database_url(name))
            asyncio.run(measure(args, database_url(name), profiler))
    (small, (cpu_1, wall_1)), (large, (cpu_n, wall_n)) = sorted(costs.items())
    per_event_cpu = (cpu_n - cpu_1) / (large - small)
    per_event_wall = (wall_n - wall_1) / (large - small)
    figures = {
        "cpu_us_per_account": round(cpu_1 - small * per_event_cpu),
        "cpu_us_per_event": round(per_event_cpu, 1),
        "wall_us_per_account": round(wall_1 - small * per_event_wall),
        "wall_us_per_event": round(per_event_wall, 1),
    }
    for size, (cpu, wall) in sorted(costs.items()):
        print(f"{size:>3} events an account: {cpu:7.0f} us CPU, {wall:7.0f} us wall per account")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
