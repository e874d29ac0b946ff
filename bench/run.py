"""Benchmark drawdown against its own baseline and against PostgreSQL (issue #4).

`python bench/run.py [--quick | --tiny] [--workers N] [--connections N] [--usage-only]`

One run creates a fresh PostgreSQL database, creates an API key with the CLI, starts
`drawdown serve`, seeds data through the HTTP API, drives load with `wrk` (see bench/wrk.lua),
measures `pgbench -N` on the same database and the peak RSS of the server's workers, and drops
the database again. Progress goes to stderr; stdout gets a table and, as its last line, one JSON
object of ratios, each computed from figures measured in this run.

Usage (issue 9): `/ingestBatch` with 500 events a request over 1,000 accounts and on one account
are measured as events *applied* per second: from the first request to the moment the database
holds no pending event (the bench polls PostgreSQL itself, so that watching costs the server
nothing), over the events applied meanwhile, as the accounts' usage totals report them before
and after (the totals must also hold every event the 202s acknowledged, and no more than those
plus the requests wrk left in flight). Meanwhile a prober sends single events through /ingest and
times each from its 202 to the first poll of the database that finds it no longer PENDING:
`usage_lag_p99_s` is the p99 of those. The log also gives, for each, the CPU time the server's
workers and PostgreSQL spent per event applied over the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
import psycopg
from psycopg import sql

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk.lua"
DRAWDOWN = Path(sys.executable).parent / "drawdown"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
ADMIN_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/test"
WRK_MARKER = "WRK_RESULT "

EFFECTIVE_FROM = "2026-01-01"
SEED_IN_FLIGHT = 8
GRANT_BATCH = 50
DETAILS_DEBITS = 19
SCALING_CONNECTIONS = 4
PGBENCH_SCALE = 10
PGBENCH_CLIENTS = 16
PGBENCH_JOBS = 2
WRK_TIMEOUT = "10s"
WRK_SLACK_S = 30
USAGE_METER = "um.bench"
USAGE_SCHEMA = "bench_call"  # as bench/wrk.lua writes its events
USAGE_BATCH = 500
USAGE_BATCH_CONNECTIONS = 8
PROBE_INTERVAL_S = 0.1
PROBE_POLL_S = 0.01
DRAIN_TIMEOUT_S = 600
DRAIN_SETTLE_S = 1.0
DRAIN_IN_FLIGHT = 16

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Profiles and options


@dataclass(frozen=True)
class Profile:
    name: str
    duration_s: int
    warmup_s: int
    balance_credits: int
    large_credits: int
    small_credits: int
    spread_accounts: int
    usage_duration_s: int  # issue 9 asks for at least 10 s of each /ingestBatch scenario


PROFILES = {
    "default": Profile("default", 20, 3, 1_000, 10_000, 10, 1_000, 20),
    "quick": Profile("quick", 5, 1, 1_000, 10_000, 10, 1_000, 10),
    "tiny": Profile("tiny", 1, 0, 50, 100, 10, 20, 1),
}


@dataclass(frozen=True)
class Options:
    profile: Profile
    workers: int
    connections: int
    usage_only: bool = False  # the baseline, usage's scenarios and pgbench: nothing else


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="5 s per scenario, 10 s per usage scenario"
    )
    mode.add_argument("--tiny", action="store_true", help="smoke test: 1 s, little seeding")
    parser.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument(
        "--usage-only",
        action="store_true",
        help="only the baseline, usage's scenarios and pgbench (seeds only what they use)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.connections < 1:
        parser.error("--workers and --connections must be at least 1")
    name = "quick" if args.quick else "tiny" if args.tiny else "default"
    return Options(PROFILES[name], args.workers, args.connections, args.usage_only)


def missing_tools() -> list[str]:
    """How to install each tool the bench needs and cannot find."""
    if not DRAWDOWN.exists():
        return [f"{DRAWDOWN} is missing: install the project (`pip install -e .`) first."]
    hints = {
        "wrk": "wrk is missing: install it with `apt-get install wrk` (Debian package `wrk`).",
        "pgbench": (
            "pgbench is missing: install it with `apt-get install postgresql-contrib`; on Debian "
            "it ships in the server package (`postgresql-15`), not in `postgresql-client`."
        ),
    }
    return [hint for tool, hint in hints.items() if shutil.which(tool) is None]


# ---------------------------------------------------------------------------------------------
# Database, key and server


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create `drawdown_bench_<random>`, yield its name, and always drop it."""
    name = f"drawdown_bench_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log(f"created database {name}")
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        log(f"dropped database {name}")


def drawdown_env(database: str) -> dict[str, str]:
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
    return {**os.environ, "DRAWDOWN_DATABASE_URL": url}


def create_key(env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(DRAWDOWN), "keys", "create", "--org", "bench"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"drawdown keys create failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path


def wait_for_health(server: Server, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"drawdown serve exited early:\n{tail(server.log_path)}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"drawdown serve did not answer /health in {timeout_s:.0f} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server, then kill its process group if it does not stop."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log("server did not stop in 15 s; killing it")
    with suppress(ProcessLookupError):  # its own session: this also reaps orphaned workers
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def running_server(env: dict[str, str], workers: int) -> Iterator[Server]:
    port = free_port()
    descriptor, name = tempfile.mkstemp(prefix="drawdown-bench-", suffix=".log")
    log_path = Path(name)
    command = [str(DRAWDOWN), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with os.fdopen(descriptor, "wb") as log_file:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for_health(server)
        log(f"server pid {process.pid} answers on {server.base_url} ({workers} workers)")
        yield server
    finally:
        stop(process)
        report_server_log(log_path)
        log_path.unlink(missing_ok=True)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def report_server_log(path: Path) -> None:
    text = path.read_text(errors="replace")
    troubles = [line for line in text.splitlines() if re.search(r"Traceback|ERROR|Error", line)]
    if troubles:
        log(f"the server logged {len(troubles)} error lines; its log ends with:\n{tail(path)}")


# ---------------------------------------------------------------------------------------------
# Seeding through the API


DETAILS_ACCOUNT = "details-acc"
BALANCE_ACCOUNT = "balance-acc"  # profile.balance_credits credits of 10
GRANT_ACCOUNT = "grant-acc"  # starts empty; the grant scenario adds to it
SPREAD_PREFIX = "spread-"  # spread-0 .. spread-<n-1>, 1,000,000 each
HOT_ACCOUNT = "hot-acc"  # one credit of 1,000,000,000
LARGE_ACCOUNT = "large-acc"  # profile.large_credits credits of 100
SMALL_ACCOUNT = "small-acc"  # profile.small_credits credits of 100
BALANCE_CREDIT, SCALING_CREDIT = 10, 100


class Api:
    """The API with a key, at most `in_flight` requests at a time; anything but 2xx raises."""

    def __init__(self, base_url: str, key: str, in_flight: int = SEED_IN_FLIGHT) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            limits=httpx.Limits(max_connections=in_flight),
            timeout=120,
        )
        self.slots = asyncio.Semaphore(in_flight)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        content = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        async with self.slots:
            response = await self.http.request(method, path, content=content, headers=headers)
        if not response.is_success:
            raise RuntimeError(
                f"{method} {path} {(content or '')[:300]} answered "
                f"{response.status_code}: {response.text[:500]}"
            )
        return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)

    async def close(self) -> None:
        await self.http.aclose()


async def gather_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*calls))


def credit_request(account: str, amount: int, priority: int = 1) -> dict[str, Any]:
    return {
        "accountId": account,
        "purpose": "PREPAID_CREDIT",
        "effectiveFrom": EFFECTIVE_FROM,
        "creditAmount": amount,
        "priority": priority,
    }


def debit_body(invoice: str, amount: int) -> dict[str, Any]:
    item = {"entityId": "um.api", "entityType": "USAGE_METER_RATE_CARD", "amount": amount}
    return {"invoiceId": invoice, "mode": "DEBIT", "lineItems": [item]}


async def create_account(api: Api, account: str) -> None:
    customer = {
        "id": f"cust-{account}",
        "name": f"Bench {account}",
        "primaryEmail": "bench@example.test",
        "address": {},
        "account": {"id": account, "name": f"Bench account {account}"},
    }
    await api.call("POST", "/customers", customer)


async def grant_in_batches(api: Api, requests: list[dict[str, Any]]) -> None:
    """Grant in batches of 50, up to `in_flight` batches at a time."""
    random.Random(4).shuffle(requests)  # mix accounts so that batches rarely queue on one lock
    batches = [requests[n : n + GRANT_BATCH] for n in range(0, len(requests), GRANT_BATCH)]
    await gather_all(api.call("POST", "/credits", {"creditRequests": b}) for b in batches)


async def seed_details_credit(api: Api) -> str:
    """A credit of 1000 on an account of its own, then 19 DEBITs of 1: 20 transactions."""
    credit = await api.call("POST", "/credits", credit_request(DETAILS_ACCOUNT, 1000))
    credit_id = str(credit["id"])
    path = f"/accounts/{DETAILS_ACCOUNT}/credit_applications"
    for n in range(DETAILS_DEBITS):
        await api.call("POST", path, debit_body(f"details-{n}", 1))
    transactions = (await api.call("GET", f"/credits/{credit_id}"))["transactions"]
    if len(transactions) != DETAILS_DEBITS + 1:
        raise RuntimeError(f"credit {credit_id} has {len(transactions)} transactions, not 20")
    return credit_id


async def check_balance(api: Api, account: str, expected: int) -> None:
    available = (await api.call("GET", f"/accounts/{account}/credit_balance"))["availableBalance"]
    if available != expected:
        raise RuntimeError(f"{account}: availableBalance is {available}, expected {expected}")


def seed_grants(profile: Profile, usage_only: bool = False) -> list[dict[str, Any]]:
    grants = [
        credit_request(f"{SPREAD_PREFIX}{n}", 1_000_000) for n in range(profile.spread_accounts)
    ]
    grants.append(credit_request(HOT_ACCOUNT, 1_000_000_000))
    if usage_only:
        return grants
    for account, count, amount in (
        (BALANCE_ACCOUNT, profile.balance_credits, BALANCE_CREDIT),
        (LARGE_ACCOUNT, profile.large_credits, SCALING_CREDIT),
        (SMALL_ACCOUNT, profile.small_credits, SCALING_CREDIT),
    ):
        grants += [credit_request(account, amount, n % 10) for n in range(count)]
    return grants


async def seed_usage_meter(api: Api) -> None:
    """The meter every bench event matches: tokens at usage.md's 0.002 credits per 1000
    (written as 2 per 1,000,000: integers keep the body exact through json.dumps)."""
    meter = {
        "id": USAGE_METER,
        "name": "Bench tokens",
        "eventSchemaName": USAGE_SCHEMA,
        "aggregation": "SUM",
        "attribute": "tokens",
        "creditRate": {"credits": 2, "perQuantity": 1_000_000},
    }
    await api.call("POST", "/usage_meters", meter)


async def seed(base_url: str, key: str, profile: Profile, usage_only: bool = False) -> str | None:
    """Create every account and credit the scenarios need; return the 20-line credit's id
    (None with `usage_only`: only the accounts and credits usage's scenarios use)."""
    singles = [DETAILS_ACCOUNT, BALANCE_ACCOUNT, GRANT_ACCOUNT, HOT_ACCOUNT]
    singles += [LARGE_ACCOUNT, SMALL_ACCOUNT]
    if usage_only:
        singles = [HOT_ACCOUNT]
    accounts = singles + [f"{SPREAD_PREFIX}{n}" for n in range(profile.spread_accounts)]
    api = Api(base_url, key)
    try:
        log(f"seeding {len(accounts)} customers, each with an account")
        await gather_all(create_account(api, account) for account in accounts)
        grants = seed_grants(profile, usage_only)
        log(
            f"seeding {len(grants)} credits in batches of {GRANT_BATCH}, {SEED_IN_FLIGHT} in flight"
        )
        await grant_in_batches(api, grants)
        log(f"seeding the usage meter {USAGE_METER}")
        await seed_usage_meter(api)
        if usage_only:
            log("seeding done")
            return None
        log("seeding a credit with 20 transactions")
        credit_id = await seed_details_credit(api)
        await check_balance(api, BALANCE_ACCOUNT, BALANCE_CREDIT * profile.balance_credits)
        await check_balance(api, LARGE_ACCOUNT, SCALING_CREDIT * profile.large_credits)
        await check_balance(api, SMALL_ACCOUNT, SCALING_CREDIT * profile.small_credits)
    finally:
        await api.close()
    log("seeding done and checked")
    return credit_id


# ---------------------------------------------------------------------------------------------
# Load with wrk, and pgbench


@dataclass(frozen=True)
class Scenario:
    label: str
    path: str
    connections: int
    method: str = "GET"
    body: str | None = None
    debit_accounts: tuple[str, ...] | None = None  # ACCOUNT [COUNT], as bench/wrk.lua reads
    usage: tuple[str, ...] | None = None  # ingest|batch [SIZE] ACCOUNT [COUNT], as wrk.lua reads

    def script_args(self) -> list[str]:
        if self.debit_accounts is not None:  # a fresh run id keeps every invoiceId unique
            return ["debit", f"inv-{secrets.token_hex(4)}", *self.debit_accounts]
        if self.usage is not None:  # likewise every event id
            kind, *rest = self.usage
            return [kind, f"evt-{secrets.token_hex(4)}", *rest]
        return ["static", self.method] + ([self.body] if self.body is not None else [])


@dataclass(frozen=True)
class Measurement:
    label: str
    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    sample: str = ""
    ok_requests: int = 0  # 2xx answers


def run_wrk(base_url: str, key: str, scenario: Scenario, duration_s: int) -> Measurement:
    command = [
        "wrk",
        f"--threads={min(2, scenario.connections)}",
        f"--connections={scenario.connections}",
        f"--duration={duration_s}s",
        f"--timeout={WRK_TIMEOUT}",
        "--header=Authorization: Bearer " + key,
        "--header=Content-Type: application/json",
        f"--script={WRK_SCRIPT}",
        base_url + scenario.path,
        "--",
        *scenario.script_args(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + WRK_SLACK_S)
    lines = [line for line in done.stdout.splitlines() if line.startswith(WRK_MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return measurement(scenario.label, json.loads(lines[-1].removeprefix(WRK_MARKER)))


def measurement(label: str, result: dict[str, Any]) -> Measurement:
    """bench/wrk.lua's figures: errors are non-2xx answers plus socket errors and timeouts."""
    socket_errors = {k: int(result[k]) for k in ("connect", "read", "write", "timeout")}
    sample = str(result["sample"])
    if any(socket_errors.values()):
        counts = ", ".join(f"{k} {n}" for k, n in socket_errors.items() if n)
        sample = f"{sample} (socket errors: {counts})".lstrip()
    return Measurement(
        label=label,
        per_second=int(result["requests"]) / (int(result["duration_us"]) / 1e6),
        p50_ms=int(result["p50_us"]) / 1000,
        p99_ms=int(result["p99_us"]) / 1000,
        errors=int(result["non2xx"]) + sum(socket_errors.values()),
        sample=sample,
        ok_requests=int(result["requests"]) - int(result["non2xx"]),
    )


def measure(base_url: str, key: str, scenario: Scenario, profile: Profile) -> Measurement:
    if profile.warmup_s > 0:
        warmup = run_wrk(base_url, key, scenario, profile.warmup_s)
        if warmup.errors:
            log(f"{scenario.label}: {warmup.errors} errors during warm-up, e.g. {warmup.sample}")
    result = run_wrk(base_url, key, scenario, profile.duration_s)
    log(
        f"{scenario.label}: {result.per_second:.1f}/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, {result.errors} errors"
        + (f", e.g. {result.sample}" if result.errors else "")
    )
    return result


def pgbench(args: list[str], timeout_s: float) -> str:
    connection = ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER]
    done = subprocess.run(
        ["pgbench", *connection, *args], capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def run_pgbench(database: str, profile: Profile) -> Measurement:
    """PostgreSQL's own ceiling on this machine: pgbench's simple-update transactions."""
    log(f"pgbench: initialising scale {PGBENCH_SCALE} beside drawdown's tables")
    pgbench(["-i", "-q", "-s", str(PGBENCH_SCALE), database], timeout_s=600)
    clients = ["-N", "-c", str(PGBENCH_CLIENTS), "-j", str(PGBENCH_JOBS)]
    if profile.warmup_s > 0:
        pgbench([*clients, "-T", str(profile.warmup_s), database], profile.warmup_s + 60)
    output = pgbench([*clients, "-T", str(profile.duration_s), database], profile.duration_s + 60)
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", output)
    if tps is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{output}")
    failed = re.search(r"number of failed transactions: (\d+)", output)
    errors = int(failed.group(1)) if failed else 0
    label = f"pgbench -N, tps (c={PGBENCH_CLIENTS})"
    log(f"{label}: {float(tps.group(1)):.1f}, {errors} failed")
    return Measurement(label, float(tps.group(1)), None, None, errors)


# ---------------------------------------------------------------------------------------------
# Usage: events applied per second, and the lag from a 202 to applied


async def applied_events(api: Api, account: str) -> tuple[int, int]:
    """The account's events applied on the bench meter, and its events pending."""
    body = await api.call("GET", f"/accounts/{account}/usage")
    applied = sum(int(m["events"]) for m in body["meters"] if m["meterId"] == USAGE_METER)
    return applied, int(body["pending"])


async def applied_total(api: Api, accounts: Sequence[str]) -> int:
    """The events applied on these accounts, as the API reports them; none may be pending."""
    found = await gather_all(applied_events(api, account) for account in accounts)
    pending = sum(count for _, count in found)
    if pending:
        raise RuntimeError(f"{pending} events still pending once the database had none")
    return sum(applied for applied, _ in found)


class Watcher:
    """Watches the bench's database directly, so that measuring costs the server nothing:
    when nothing is pending any more, and when each probe event stops being PENDING. Both are
    read from committed rows, exactly what the API then answers."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], org_seq: int) -> None:
        self.conn = conn
        # events are unique per (organization, id): a poll by id alone would scan every event,
        # costing the server's database as much as a good part of the load it measures
        self.org_seq = org_seq
        self.probes: dict[str, float] = {}  # event id -> when its 202 came
        self.lags: list[float] = []

    @classmethod
    async def connect(cls, database: str, account: str) -> Watcher:
        """Watch the database; probes go to the organization of `account`."""
        url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        cursor = await conn.execute("SELECT org_seq FROM accounts WHERE id = %s", (account,))
        row = await cursor.fetchone()
        if row is None:
            await conn.close()
            raise RuntimeError(f"account {account} is not in the bench's database")
        return cls(conn, int(row[0]))

    async def close(self) -> None:
        await self.conn.close()

    async def drained(self) -> float:
        """Poll until no event has been pending for DRAIN_SETTLE_S (a request wrk left in
        flight may still commit events after a first empty poll); the moment the last such
        quiet stretch began."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        quiet_since: float | None = None
        while True:
            cursor = await self.conn.execute(
                "SELECT count(*) FROM usage_events WHERE status = 'PENDING'"
            )
            row = await cursor.fetchone()
            seen = time.monotonic()
            if row is not None and row[0] == 0:
                quiet_since = seen if quiet_since is None else quiet_since
                if seen - quiet_since >= DRAIN_SETTLE_S:
                    return quiet_since
            else:
                quiet_since = None
            if seen > deadline:
                raise RuntimeError(f"events still pending {DRAIN_TIMEOUT_S} s after the load")
            await asyncio.sleep(PROBE_POLL_S)

    async def follow_probes(self, stop: asyncio.Event) -> None:
        """Until told to stop and every probe is applied: time each probe from its 202 to
        the poll that first finds it applied."""
        while not stop.is_set() or self.probes:
            if self.probes:
                cursor = await self.conn.execute(
                    "SELECT id FROM usage_events"
                    " WHERE org_seq = %s AND id = ANY(%s) AND status <> 'PENDING'",
                    (self.org_seq, list(self.probes)),
                )
                seen = time.monotonic()
                for (event_id,) in await cursor.fetchall():
                    self.lags.append(seen - self.probes.pop(event_id))
                late = [i for i, at in self.probes.items() if seen - at > DRAIN_TIMEOUT_S]
                if late:
                    raise RuntimeError(f"probe {late[0]} was not applied in {DRAIN_TIMEOUT_S} s")
            await asyncio.sleep(PROBE_POLL_S)


async def probe(api: Api, accounts: Sequence[str], stop: asyncio.Event, watcher: Watcher) -> int:
    """A single event through /ingest every PROBE_INTERVAL_S (without waiting for the answers)
    until told to stop, each handed to the watcher at its 202; how many were sent."""
    run, chooser, sent = secrets.token_hex(4), random.Random(9), []
    while not stop.is_set():
        event_id = f"probe-{run}-{len(sent)}"
        account = chooser.choice(accounts)
        sent.append(asyncio.create_task(one_probe(api, account, event_id, watcher)))
        await asyncio.sleep(PROBE_INTERVAL_S)
    await asyncio.gather(*sent)
    return len(sent)


async def one_probe(api: Api, account: str, event_id: str, watcher: Watcher) -> None:
    event = {
        "schemaName": USAGE_SCHEMA,
        "id": event_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "accountId": account,
        "attributes": [{"name": "tokens", "value": "10"}],
        "dimensions": {},
    }
    await api.call("POST", "/ingest", {"event": event})
    watcher.probes[event_id] = time.monotonic()


@dataclass(frozen=True)
class UsageRun:
    measurement: Measurement  # per_second: events applied per second
    lags_s: list[float]


async def measure_usage_async(
    base_url: str,
    key: str,
    database: str,
    scenario: Scenario,
    accounts: Sequence[str],
    profile: Profile,
    workers: Sequence[int],
) -> UsageRun:
    api = Api(base_url, key, in_flight=DRAIN_IN_FLIGHT)
    watcher = await Watcher.connect(database, accounts[0])
    cpu = CpuWatch(workers)
    try:
        await watcher.drained()
        before = await applied_total(api, accounts)
        stop = asyncio.Event()
        cpu.start()
        started = time.monotonic()
        following = asyncio.create_task(watcher.follow_probes(stop))
        probes = asyncio.create_task(probe(api, accounts, stop, watcher))
        load = await asyncio.to_thread(run_wrk, base_url, key, scenario, profile.usage_duration_s)
        stop.set()
        sent_probes = await probes
        done = await watcher.drained()
        await following
        cpu.stop()
        after = await applied_total(api, accounts)  # read once drained: not timed
    finally:
        await api.close()
        await watcher.close()
    applied = after - before
    # wrk counts the answers it read before its time was up; the requests still in flight
    # then (one per connection at most) were stored and applied all the same
    acknowledged = load.ok_requests * USAGE_BATCH + sent_probes
    in_flight = scenario.connections * USAGE_BATCH
    errors, sample = load.errors, load.sample
    if not acknowledged <= applied <= acknowledged + in_flight:
        errors += 1
        sample = (
            f"{applied} events applied, {acknowledged} acknowledged and at most {in_flight} "
            f"in flight; {sample}"
        ).strip("; ")
    lags = watcher.lags
    per_second = applied / (done - started)
    worker_cpu, postgres_cpu = (1e6 * spent / max(applied, 1) for spent in cpu.spent)
    log(
        f"{scenario.label}: CPU per event applied: workers {worker_cpu:.0f} us, PostgreSQL "
        f"{postgres_cpu:.0f} us (wrk and the bench not counted)"
    )
    log(
        f"{scenario.label}: {per_second:.0f} events applied/s ({applied} in "
        f"{done - started:.1f} s, {load.per_second:.1f} requests/s), request p99 "
        f"{load.p99_ms:.0f} ms, lag p50 {percentile(lags, 50):.3f} s, p99 "
        f"{percentile(lags, 99):.3f} s, max {max(lags, default=0):.3f} s over {len(lags)} probes, "
        f"{errors} errors" + (f", e.g. {sample}" if errors else "")
    )
    result = Measurement(
        scenario.label, per_second, load.p50_ms, load.p99_ms, errors, sample, load.ok_requests
    )
    return UsageRun(result, lags)


def measure_usage(
    base_url: str,
    key: str,
    database: str,
    scenario: Scenario,
    accounts: Sequence[str],
    profile: Profile,
    workers: Sequence[int],
) -> UsageRun:
    return asyncio.run(
        measure_usage_async(base_url, key, database, scenario, accounts, profile, workers)
    )


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        raise RuntimeError("no lag was measured")
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * pct / 100)  # the nearest-rank percentile
    return ordered[max(rank, 1) - 1]


def usage_scenarios(options: Options) -> dict[str, tuple[Scenario, list[str]]]:
    count = options.profile.spread_accounts
    spread = [f"{SPREAD_PREFIX}{n}" for n in range(count)]
    c, size = USAGE_BATCH_CONNECTIONS, str(USAGE_BATCH)
    return {
        "usage_spread": (
            Scenario(
                f"ingestBatch {size}/req, {count} accounts",
                "/",
                c,
                usage=("batch", size, SPREAD_PREFIX, str(count)),
            ),
            spread,
        ),
        "usage_hot": (
            Scenario(
                f"ingestBatch {size}/req, one account", "/", c, usage=("batch", size, HOT_ACCOUNT)
            ),
            [HOT_ACCOUNT],
        ),
    }


def ingest_single_scenario(options: Options) -> Scenario:
    count = str(options.profile.spread_accounts)
    return Scenario(
        "POST /ingest (one event)",
        "/",
        options.connections,
        usage=("ingest", SPREAD_PREFIX, count),
    )


# ---------------------------------------------------------------------------------------------
# Peak RSS of the server's workers


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from its state on (after "pid (comm) "), or None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def parent_of(pid: int) -> int | None:
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def worker_pids(server_pid: int) -> list[int]:
    """The uvicorn workers: the server's children started by multiprocessing's spawn."""
    children = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and parent_of(int(entry.name)) == server_pid
    ]
    workers = []
    for pid in children:
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
        except OSError:
            continue
    return workers or [server_pid]  # one worker: uvicorn serves in the server process itself


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """User and system CPU time of each process still running (utime and stime)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:  # utime and stime, counted from the state field
            found[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def postgres_pids() -> list[int]:
    """This machine's PostgreSQL processes (the bench's database is on 127.0.0.1)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuWatch:
    """CPU time the server's workers and PostgreSQL spend between `start` and `stop`, for the
    log (approximate for PostgreSQL: a backend that exits meanwhile is not counted, one that
    starts meanwhile counts from its start)."""

    def __init__(self, workers: Sequence[int]) -> None:
        self.workers = list(workers)
        self.before: dict[int, float] = {}
        self.spent = (0.0, 0.0)

    def start(self) -> None:
        self.before = cpu_seconds([*self.workers, *postgres_pids()])

    def stop(self) -> None:
        now = cpu_seconds([*self.workers, *postgres_pids()])
        spent = {pid: at - self.before.get(pid, 0.0) for pid, at in now.items()}
        workers = sum(spent.get(pid, 0.0) for pid in self.workers)
        self.spent = (workers, sum(spent.values()) - workers)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def max_worker_rss_mb(server_pid: int) -> float:
    pids = worker_pids(server_pid)
    peaks = {pid: peak_rss_mb(pid) for pid in pids}
    log("peak RSS (VmHWM) per worker: " + ", ".join(f"{p}: {mb:.1f} MB" for p, mb in peaks.items()))
    return max(peaks.values())


# ---------------------------------------------------------------------------------------------
# Scenarios, report, main


def baseline_scenario(options: Options) -> Scenario:
    return Scenario("baseline: GET /health", "/health", options.connections)


def throughput_scenarios(credit_id: str, options: Options) -> dict[str, Scenario]:
    profile, c = options.profile, options.connections
    grant = json.dumps(credit_request(GRANT_ACCOUNT, 10), separators=(",", ":"))
    spread = str(profile.spread_accounts)
    return {
        "baseline": baseline_scenario(options),
        "details": Scenario("GET /credits/{id} (20 transactions)", f"/credits/{credit_id}", c),
        "balance": Scenario(
            f"GET credit_balance ({profile.balance_credits} credits)",
            f"/accounts/{BALANCE_ACCOUNT}/credit_balance",
            c,
        ),
        "grant": Scenario("POST /credits (one credit)", "/credits", c, "POST", grant),
        "debit_spread": Scenario(
            f"DEBIT over {spread} accounts", "/", c, debit_accounts=(SPREAD_PREFIX, spread)
        ),
        "debit_hot": Scenario("DEBIT on one hot account", "/", c, debit_accounts=(HOT_ACCOUNT,)),
    }


def scaling_scenarios(options: Options) -> dict[str, Scenario]:
    c = SCALING_CONNECTIONS
    large, small = options.profile.large_credits, options.profile.small_credits
    return {
        "balance_large": Scenario(
            f"GET credit_balance ({large} credits, c={c})",
            f"/accounts/{LARGE_ACCOUNT}/credit_balance",
            c,
        ),
        "balance_small": Scenario(
            f"GET credit_balance ({small} credits, c={c})",
            f"/accounts/{SMALL_ACCOUNT}/credit_balance",
            c,
        ),
        "debit_large": Scenario(
            f"DEBIT ({large} credits, c={c})", "/", c, debit_accounts=(LARGE_ACCOUNT,)
        ),
        "debit_small": Scenario(
            f"DEBIT ({small} credits, c={c})", "/", c, debit_accounts=(SMALL_ACCOUNT,)
        ),
    }


def ratio(numerator: float | None, denominator: float | None, what: str) -> float:
    if numerator is None or denominator is None or denominator <= 0:
        raise RuntimeError(f"cannot compute {what} from {numerator} / {denominator}")
    return round(numerator / denominator, 3)


def summary(
    results: dict[str, Measurement], rss_mb: float, lags_s: Sequence[float]
) -> dict[str, float]:
    """The JSON line: throughput ratios, p50 latency ratios, the peak RSS per worker, and
    usage's applied events/s over pgbench's tps, its lag p99 and single /ingest's ratio."""
    baseline = results["baseline"].per_second
    pgbench_tps = results["pgbench"].per_second
    figures = {}
    if "debit_spread" in results:  # not with --usage-only
        figures = {
            f"{name}_vs_baseline": ratio(results[name].per_second, baseline, f"{name}_vs_baseline")
            for name in ("details", "balance", "grant", "debit_spread", "debit_hot")
        }
        figures["debit_spread_vs_pgbench"] = ratio(
            results["debit_spread"].per_second, pgbench_tps, "debit_spread_vs_pgbench"
        )
        for kind in ("balance", "debit"):
            large, small = results[f"{kind}_large"].p50_ms, results[f"{kind}_small"].p50_ms
            figures[f"{kind}_10k_vs_10"] = ratio(large, small, f"{kind}_10k_vs_10")
        for name in ("debit_spread", "debit_hot"):
            p99 = results[name].p99_ms
            if p99 is None:
                raise RuntimeError(f"no p99 latency for {name}")
            figures[f"{name}_p99_ms"] = round(p99, 1)
    figures["rss_mb_per_worker"] = round(rss_mb, 1)
    for name in ("usage_spread", "usage_hot"):
        figures[f"{name}_vs_pgbench"] = ratio(
            results[name].per_second, pgbench_tps, f"{name}_vs_pgbench"
        )
    figures["usage_lag_p99_s"] = round(percentile(lags_s, 99), 3)
    figures["ingest_single_vs_baseline"] = ratio(
        results["ingest_single"].per_second, baseline, "ingest_single_vs_baseline"
    )
    return figures


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: dict[str, Measurement], title: str) -> None:
    baseline = results["baseline"].per_second
    header = f"{'scenario':<44} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>9} "
    print(title)
    print(header + f"{'vs baseline':>12}")
    print("-" * (len(header) + 12))
    for result in results.values():
        errors = f"{result.errors} !!" if result.errors else "0"
        print(
            f"{result.label:<44} {result.per_second:>10.1f} {cell(result.p50_ms):>9} "
            f"{cell(result.p99_ms):>9} {errors:>9} {result.per_second / baseline:>12.3f}"
        )
    flagged = [result for result in results.values() if result.errors]
    for result in flagged:
        print(f"!! {result.label}: {result.errors} errors, e.g. {result.sample}")
    if not flagged:
        print("no scenario had errors (non-2xx answers, socket errors or timeouts)")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: server, database


def run(options: Options) -> tuple[dict[str, Measurement], float, list[float]]:
    profile = options.profile
    results: dict[str, Measurement] = {}
    lags: list[float] = []
    with fresh_database() as database:
        env = drawdown_env(database)
        log("creating an API key with the CLI (this also migrates)")
        key = create_key(env)
        with running_server(env, options.workers) as server:
            credit_id = asyncio.run(seed(server.base_url, key, profile, options.usage_only))
            if credit_id is None:
                scenarios = {"baseline": baseline_scenario(options)}
            else:
                scenarios = throughput_scenarios(credit_id, options) | scaling_scenarios(options)
            scenarios["ingest_single"] = ingest_single_scenario(options)
            for name, scenario in scenarios.items():
                results[name] = measure(server.base_url, key, scenario, profile)
            workers = worker_pids(server.process.pid)
            for name, (scenario, accounts) in usage_scenarios(options).items():
                usage_run = measure_usage(
                    server.base_url, key, database, scenario, accounts, profile, workers
                )
                results[name] = usage_run.measurement
                lags += usage_run.lags_s
            rss_mb = max_worker_rss_mb(server.process.pid)
        results["pgbench"] = run_pgbench(database, profile)
    return results, rss_mb, lags


def main(argv: Sequence[str]) -> int:
    options = parse_options(argv)
    missing = missing_tools()
    if missing:
        print("\n".join(missing), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    profile = options.profile
    log(
        f"profile {profile.name}: {profile.duration_s} s per scenario after {profile.warmup_s} s "
        f"of warm-up, {options.workers} workers, {options.connections} connections"
    )
    results, rss_mb, lags = run(options)
    figures = summary(results, rss_mb, lags)
    title = (
        f"drawdown bench ({profile.name}: {profile.duration_s} s per scenario, "
        f"{profile.usage_duration_s} s per ingestBatch scenario, {options.workers} workers, "
        f"{options.connections} connections; peak RSS per worker {rss_mb:.1f} MB; "
        "ingestBatch rows: events applied/s, not requests)"
    )
    print_table(results, title)
    print(json.dumps(figures))
    log(f"finished in {time.monotonic() - _started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
