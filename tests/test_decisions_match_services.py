"""The pure decisions give exactly what the services give today, field for field: random
histories run through the services on the real database (one write per transaction) and
through the decisions on the in-memory store (writes in coalesced groups), compared after
every group: every answer or error (class and message), every account's kept balance
(totals, asOf, validThrough, lastUpdatedAt), every credit, its ledger lines in order, and every
application. The reference model checks both against credits.md; this checks the move.

Delete this file with the services it compares against."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drawdown.clock import FixedClock
from drawdown.errors import DrawdownError
from drawdown.jobs.expiry import sweep
from drawdown.ledger.records import AccountRecord, ApplicationRecord, CreditRecord
from drawdown.services.parties import create_customer
from drawdown.services.writes import Writes
from drawdown.store import applications as stored_applications
from drawdown.store import ledger as stored_ledger
from drawdown.store.database import Database
from drawdown.store.parties import find_or_create_organization
from tests.memory_ledger import Apply, Grant, MemoryLedger, Settle, Write, wants_of
from tests.test_decisions import (
    ACCOUNTS,
    ORG,
    START,
    DecisionHistory,
    Op,
    history_op,
    steps,
)


class Ids:
    """Credit ids are made anew on each side: the n-th credit granted on one is the n-th on
    the other."""

    def __init__(self) -> None:
        self.to_db: dict[str, str] = {}
        self.to_memory: dict[str, str] = {}

    def pair(self, memory_id: str, db_id: str) -> None:
        assert self.to_db.setdefault(memory_id, db_id) == db_id
        assert self.to_memory.setdefault(db_id, memory_id) == memory_id

    def memory_words(self, message: str) -> str:
        for db_id, memory_id in self.to_memory.items():
            message = message.replace(db_id, memory_id)
        return message


def credit_fields(credit: CreditRecord, name: Any) -> tuple[Any, ...]:
    a = credit.amounts
    return (
        name(credit.id),
        credit.account_id,
        credit.customer_id,
        credit.credit_unit,
        credit.purpose,
        credit.applicable_entity_ids,
        credit.effective_from,
        credit.effective_until,
        credit.priority,
        credit.grantor_id,
        credit.idempotency_key,
        credit.request_hash,
        credit.status,
        (a.credit_amount, a.consumed, a.held, a.expired, a.voided),
        credit.created_at,
        credit.updated_at,
    )


def application_fields(application: ApplicationRecord, name: Any) -> tuple[Any, ...]:
    return (
        application.account_id,
        application.invoice_id,
        application.status,
        application.mode,
        application.as_of,
        [
            (
                line.entity_id,
                line.entity_type,
                line.amount,
                [(name(a.credit_id), a.amount) for a in line.allocations],
            )
            for line in application.lines
        ],
        application.created_at,
        application.updated_at,
        application.request_hash,
    )


def account_fields(account: AccountRecord) -> tuple[Any, ...]:
    return (account.totals, account.as_of, account.valid_through, account.balance_updated_at)


class Side:
    """The services on the database, driven like the decisions."""

    def __init__(self, db: Database, clock: FixedClock, org_seq: int) -> None:
        self.db, self.clock, self.org_seq = db, clock, org_seq
        self.writes = Writes(db, clock)

    async def run(self, write: Write, ids: Ids) -> Any:
        try:
            if isinstance(write, Grant):
                return await self.writes.grant(self.org_seq, list(write.requests))
            if isinstance(write, Apply):
                return await self.writes.apply(self.org_seq, write.account_id, write.request)
            if isinstance(write, Settle):
                settle = self.writes.capture if write.action == "capture" else self.writes.release
                return await settle(self.org_seq, write.account_id, write.invoice_id)
            return await self.writes.void(
                self.org_seq, ids.to_db.get(write.credit_id, write.credit_id)
            )
        except DrawdownError as error:
            return error

    async def state(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            accounts = {}
            for account_id in ACCOUNTS:
                account = await stored_ledger.find_account(conn, self.org_seq, account_id)
                assert account is not None
                accounts[account_id] = account
            credits = await stored_ledger.page_of_credits(
                conn, self.org_seq, after_seq=0, limit=10_000
            )
            lines = {c.id: await stored_ledger.transactions_of(conn, c) for c in credits}
            applications = {}
            for account_id, account in accounts.items():
                rows = await stored_applications.page_of_applications(conn, account.seq, 0, 10_000)
                for row in rows:
                    applications[(account_id, row.invoice_id)] = ApplicationRecord.from_row(
                        row, account_id
                    )
        return {"accounts": accounts, "credits": credits, "lines": lines, "apps": applications}


def same_outcome(memory: Any, db: Any, ids: Ids) -> None:
    keep = ids.to_memory.get
    if isinstance(memory, DrawdownError) or isinstance(db, DrawdownError):
        assert type(memory) is type(db), (memory, db)
        assert memory.message == ids.memory_words(db.message)
    elif isinstance(memory, list):
        assert len(memory) == len(db)
        for mine, theirs in zip(memory, db, strict=True):
            ids.pair(mine.id, theirs.id)
            assert credit_fields(mine, str) == credit_fields(theirs, keep)
    elif isinstance(memory, CreditRecord):
        assert credit_fields(memory, str) == credit_fields(db, keep)
    else:
        assert application_fields(memory, str) == application_fields(db, keep)


def same_state(memory: MemoryLedger, db: dict[str, Any], ids: Ids) -> None:
    keep = ids.to_memory.get
    by_id = {a.id: a for a in memory.accounts.values()}
    for account_id in ACCOUNTS:
        assert account_fields(by_id[account_id]) == account_fields(db["accounts"][account_id])
    db_credits = {keep(c.id): c for c in db["credits"]}
    assert set(db_credits) == set(memory.credits)
    for credit_id, credit in memory.credits.items():
        theirs = db_credits[credit_id]
        assert credit_fields(credit, str) == credit_fields(theirs, keep)
        assert [
            (x.transaction_type, x.amount, x.invoice_id, x.entity_id, x.created_at)
            for x in memory.lines[credit_id]
        ] == [
            (x.transaction_type, x.amount, x.invoice_id, x.entity_id, x.created_at)
            for x in db["lines"][theirs.id]
        ], credit_id
    names = {seq: account.id for seq, account in memory.accounts.items()}
    mine = {(names[seq], invoice): app for (seq, invoice), app in memory.applications.items()}
    assert set(mine) == set(db["apps"])
    for key, app in mine.items():
        assert application_fields(app, str) == application_fields(db["apps"][key], keep)


def locked_accounts(memory: MemoryLedger, writes: list[Write], now: datetime) -> list[int]:
    """The accounts the coalescer locks for `writes` (by the services' seq), which it brings
    up to the day before deciding."""
    wants = wants_of(ORG, writes, now.date())
    names = {account_id for _, account_id in wants["accounts"]}
    for _, credit_id in wants["credits"]:
        if credit_id in memory.credits:
            names.add(memory.credits[credit_id].account_id)
    return sorted(names)


async def run_against_services(
    db: Database, ops: list[tuple[Op, bool]], first: int, more: int
) -> None:
    clock = FixedClock(START)
    async with db.write() as conn:
        org_seq = await find_or_create_organization(conn, f"match-{uuid.uuid4().hex}", START)
        for account_id in ACCOUNTS:
            body = {
                "id": f"cust-{account_id}",
                "name": "Customer",
                "primaryEmail": "c@example.test",
                "address": {},
                "account": {"id": account_id, "name": f"Account {account_id}"},
            }
            await create_customer(conn, org_seq, body, START)
    services = Side(db, clock, org_seq)
    memory = MemoryLedger(first=first, more=more)
    for account_id in ACCOUNTS:
        memory.add_account(ORG, account_id, as_of=START.date(), updated_at=START)
    history = DecisionHistory(memory)
    ids = Ids()
    account_seqs = {a.id: a.seq for a in (await services.state())["accounts"].values()}
    for kind, group in steps(ops):
        if kind == "advance":
            history.advance(group[0])
            clock.set(history.now)
            if group[0][2]:
                await sweep(db, clock)
        else:
            writes = [history.write_of(op) for op in group]
            # the coalescer brings its accounts up to the day first, whatever the writes do
            locked = locked_accounts(memory, writes, history.now)
            await services.writes.bring_to_today([account_seqs[name] for name in locked])
            db_outcomes = [await services.run(write, ids) for write in writes]
            memory_outcomes = history.run_writes(writes)
            for mine, theirs in zip(memory_outcomes, db_outcomes, strict=True):
                same_outcome(mine, theirs, ids)
        same_state(memory, await services.state(), ids)
        history.compare_everything()


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(history_op, st.booleans()), min_size=1, max_size=16),
    st.integers(1, 8),
    st.integers(1, 8),
)
async def test_the_decisions_give_what_the_services_give(
    db: Database, ops: list[tuple[Op, bool]], first: int, more: int
) -> None:
    await run_against_services(db, ops, first, more)


async def test_a_busy_history_gives_what_the_services_give(db: Database) -> None:
    usage = ("um.api", "USAGE_METER_RATE_CARD")
    seat = ("ff.seat", "FIXED_FEE_RATE_CARD")
    one = [(usage, Decimal(30)), (seat, Decimal(5))]
    batch = [
        (0, Decimal(50), 0, 0, 3, 0, None),
        (0, Decimal(50), 1, 0, None, 2, "k1"),
        (1, Decimal(9), 0, -9, 2, 0, None),  # back-dated past its last day
    ]
    await run_against_services(
        db,
        [
            (("grant", batch), False),
            (("HOLD", 0, "inv-a", one, None), False),
            (("void", 0), True),
            (("HOLD", 0, "inv-a", one, None), True),
            (("DEBIT", 0, "inv-b", one, None), True),
            (("capture", 0, "inv-a"), True),
            (("advance", 24 * 4, False), False),
            (("release", 0, "inv-b"), False),
            (("grant", [(0, Decimal(50), 1, 0, None, 2, "k1")]), False),
            (("HOLD", 0, "inv-c", one, -1), False),
            # ties in drawdown order fall to the ids, which a batch makes in key order
            (("grant", [(1, Decimal(10), 1, 0, None, 0, k) for k in ("k3", None, "k2")]), False),
            (("DEBIT", 1, "inv-a", [(usage, Decimal(15))], None), False),
            (("HOLD", 1, "inv-b", [(usage, Decimal(1))], None), True),
            (("advance", 1, False), False),
            (("capture", 1, "inv-b"), False),
        ],
        first=1,
        more=1,
    )
