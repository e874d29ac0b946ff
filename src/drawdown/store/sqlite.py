"""The write store on SQLite, through the SQLAlchemy async engine (aiosqlite).

A write transaction begins IMMEDIATE (`store.database._configure_sqlite`), so it holds the
database's one write lock from its first statement: everything it reads is current, and
loads and saves may take several statements each.
"""

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import date
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from drawdown.ledger.changes import Changes, Holdings, Loaded
from drawdown.ledger.credit import CreditStatus
from drawdown.ledger.records import AccountRecord, ApplicationRecord, CreditRecord
from drawdown.ledger.usage import EventStatus, Meter
from drawdown.ledger.usage_records import UsageSums
from drawdown.ledger.wallet import EntryStatus, TopupKey
from drawdown.store import alerts, ledger, meters, outbox, stored_events, wallets
from drawdown.store.interface import Arriving, Stored, Verdict, Wants, candidate_lists
from drawdown.store.tables import (
    accounts,
    alert_marks,
    credit_applications,
    credits,
    uncovered_marks,
    usage_events,
    usage_totals,
    wallet_entries,
    wallet_topup_keys,
)
from drawdown.store.tables import (
    wallets as wallets_table,
)
from drawdown.store.versions import accounts_written, check_lines

# A locked account's active credits in effect on a day, in drawdown order, a page at a time
_CANDIDATES = (
    select(credits)
    .where(
        credits.c.account_seq == bindparam("account_seq"),
        credits.c.status == CreditStatus.ACTIVE.value,
        credits.c.effective_from <= bindparam("as_of"),
        or_(credits.c.effective_until.is_(None), credits.c.effective_until >= bindparam("as_of")),
    )
    .order_by(
        credits.c.priority,
        credits.c.effective_until.asc().nulls_last(),
        credits.c.effective_from,
        credits.c.created_at,
        credits.c.id,  # byte order on both engines (see tables.BYTE_ORDER_ID)
    )
    .limit(bindparam("batch", literal_execute=False))
    .offset(bindparam("offset", literal_execute=False))
)

_WRITE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.seq == bindparam("b_seq"))
    .values(
        version=accounts.c.version + 1,
        bal_active_amount=bindparam("b_active_amount"),
        bal_applicable_left=bindparam("b_applicable_left"),
        bal_applicable_held=bindparam("b_applicable_held"),
        bal_inapplicable_left=bindparam("b_inapplicable_left"),
        bal_as_of=bindparam("b_as_of"),
        bal_valid_through=bindparam("b_valid_through"),
        bal_updated_at=bindparam("b_updated_at"),
    )
)
_WRITE_PROFILE = (
    update(accounts)
    .where(accounts.c.seq == bindparam("b_seq"))
    .values(
        name=bindparam("b_name"),
        invoice_currency=bindparam("b_currency"),
        status=bindparam("b_status"),
        details=bindparam("b_details"),
        updated_at=bindparam("b_updated_at"),
        archived_at=bindparam("b_archived_at"),
    )
)
_BUMP_VERSION = (
    update(accounts)
    .where(accounts.c.seq == bindparam("b_seq"))
    .values(version=accounts.c.version + 1)
)
_SAVE_CREDIT = (
    update(credits)
    .where(credits.c.seq == bindparam("b_seq"))
    .values(
        status=bindparam("b_status"),
        consumed_amount=bindparam("b_consumed"),
        hold_amount=bindparam("b_held"),
        expired_amount=bindparam("b_expired"),
        voided_amount=bindparam("b_voided"),
        updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_APPLICATION = credit_applications.insert().returning(credit_applications.c.seq)
_UPDATE_APPLICATION = (
    update(credit_applications)
    .where(credit_applications.c.seq == bindparam("b_seq"))
    .values(
        mode=bindparam("b_mode"),
        status=bindparam("b_status"),
        as_of=bindparam("b_as_of"),
        request_hash=bindparam("b_request_hash"),
        applied_amount=bindparam("b_applied"),
        remaining_amount=bindparam("b_remaining"),
        line_items=bindparam("b_line_items"),
        updated_at=bindparam("b_updated_at"),
    )
)


_PENDING_EVENTS = (
    select(usage_events)
    .where(
        usage_events.c.account_seq == bindparam("account_seq"),
        usage_events.c.status == EventStatus.PENDING.value,
    )
    .order_by(usage_events.c.occurred_at, usage_events.c.id)
    .limit(bindparam("batch", literal_execute=False))
)
# only a PENDING event is applied: one applied twice fails the save, which rolls back
_APPLY_EVENT = (
    update(usage_events)
    .where(
        usage_events.c.seq == bindparam("b_seq"),
        usage_events.c.status == EventStatus.PENDING.value,
    )
    .values(
        status=bindparam("b_status"),
        results=bindparam("b_results"),
        meter_ids=bindparam("b_meter_ids"),
        applied_at=bindparam("b_applied_at"),
    )
)
# the latest usage timestamp applied only moves forward (UTC text compares as time)
_APPLIED_THROUGH = (
    update(accounts)
    .where(accounts.c.seq == bindparam("b_seq"))
    .values(
        usage_applied_through=case(
            (
                or_(
                    accounts.c.usage_applied_through.is_(None),
                    accounts.c.usage_applied_through < bindparam("b_through"),
                ),
                bindparam("b_through"),
            ),
            else_=accounts.c.usage_applied_through,
        )
    )
)


def _behind(account: AccountRecord, today: date) -> bool:
    """The kept balance does not hold on `today`: counted for a later day, or stale since."""
    through = account.valid_through
    return account.as_of > today or (through is not None and through < today)


class SqliteTransaction:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.stale_reloads = 0  # never: the write lock is held before the first read

    async def load(self, wants: Wants, *, lock: bool = True) -> Loaded:
        # one writer at a time (BEGIN IMMEDIATE): every load is under the database's lock
        conn = self._conn
        loaded = Loaded()
        named_credits = await self._credits(
            tuple_(credits.c.org_seq, credits.c.id).in_(list(wants.credits))
            if wants.credits
            else None
        )
        named = set(wants.accounts)
        named.update((org_seq, account_id) for org_seq, account_id, _ in wants.invoices)
        named.update((org_seq, account_id) for org_seq, account_id, _ in wants.candidates)
        named.update(wants.usage)
        seqs = set(wants.account_seqs) | {c.account_seq for c in named_credits}
        conditions = []
        if named:
            conditions.append(tuple_(accounts.c.org_seq, accounts.c.id).in_(list(named)))
        if seqs:
            conditions.append(accounts.c.seq.in_(list(seqs)))
        for condition in conditions:
            for row in await conn.execute(select(accounts).where(condition)):
                account = AccountRecord.from_row(row)
                loaded.accounts[account.seq] = account
                loaded.account_ids[(account.org_seq, account.id)] = account.seq
        _keep(loaded, named_credits)

        if wants.idempotency_keys:
            by_key = await self._credits(
                tuple_(credits.c.org_seq, credits.c.idempotency_key).in_(
                    list(wants.idempotency_keys)
                )
            )
            _keep(loaded, by_key)
            for credit in by_key:
                assert credit.idempotency_key is not None
                loaded.by_key[(credit.org_seq, credit.idempotency_key)] = credit.id

        await self._load_applications(loaded, wants)

        for (org_seq, account_id, as_of), count in sorted(candidate_lists(wants).items()):
            seq = loaded.account_ids.get((org_seq, account_id))
            if seq is None:
                continue
            first = await self.candidates(seq, as_of, 0, count)
            _keep(loaded, first)
            loaded.candidates[(seq, as_of)] = [credit.id for credit in first]
            loaded.complete[(seq, as_of)] = len(first) < count

        for seq, account in loaded.accounts.items():
            if _behind(account, wants.today):
                active = await self.active_credits(seq)
                _keep(loaded, active)
                loaded.active[seq] = [credit.id for credit in active]
        await self._load_usage(loaded, wants)
        loaded.alerts = await alerts.of_accounts(
            conn, {seq: account.org_seq for seq, account in loaded.accounts.items()}
        )
        if loaded.pending:
            loaded.uncovered = await alerts.uncovered_of(conn, loaded.pending)
        await self._load_wallets(loaded, wants)
        return loaded

    async def _load_wallets(self, loaded: Loaded, wants: Wants) -> None:
        if loaded.accounts:
            found = await wallets.of_accounts(self._conn, list(loaded.accounts))
            loaded.wallets.update(found)
        if wants.topup_keys:
            rows = await self._conn.execute(
                select(wallet_topup_keys).where(
                    tuple_(wallet_topup_keys.c.org_seq, wallet_topup_keys.c.key).in_(
                        list(wants.topup_keys)
                    )
                )
            )
            for row in rows:
                loaded.topup_keys[(row.org_seq, row.key)] = TopupKey(
                    row.org_seq,
                    row.key,
                    row.account_seq,
                    row.request_hash,
                    row.entry_id,
                    row.created_at,
                )

    async def holdings(self, account_seq: int) -> Holdings:
        any_credit = await self._conn.execute(
            select(credits.c.seq).where(credits.c.account_seq == account_seq).limit(1)
        )
        held = await self._conn.execute(
            select(credit_applications.c.invoice_id)
            .where(
                credit_applications.c.account_seq == account_seq,
                credit_applications.c.status == "HELD",
            )
            .order_by(credit_applications.c.invoice_id)
        )
        return Holdings(any_credit.first() is not None, tuple(row.invoice_id for row in held))

    async def _load_usage(self, loaded: Loaded, wants: Wants) -> None:
        orgs = set()
        for org_seq, account_id in sorted(wants.usage):
            seq = loaded.account_ids.get((org_seq, account_id))
            if seq is None:
                continue
            orgs.add(org_seq)
            rows = await self._conn.execute(
                _PENDING_EVENTS, {"account_seq": seq, "batch": wants.usage_batch + 1}
            )
            events = [
                stored_events.pending_event(
                    row.seq,
                    row.account_seq,
                    row.id,
                    row.schema_name,
                    row.occurred_at,
                    stored_events.content_of(row.content),
                )
                for row in rows
            ]
            loaded.pending_more[seq] = len(events) > wants.usage_batch
            loaded.pending[seq] = events[: wants.usage_batch]
        if orgs:
            found = await self.meters(orgs)
            for org_seq in orgs:
                loaded.meters[org_seq] = found.get(org_seq, [])

    async def meters(self, org_seqs: Iterable[int]) -> dict[int, list[Meter]]:
        return await meters.of_organizations(self._conn, org_seqs)

    async def event_hashes(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        hashes: dict[tuple[int, str], str] = {}
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            rows = await self._conn.execute(
                select(
                    usage_events.c.org_seq, usage_events.c.id, usage_events.c.content_hash
                ).where(tuple_(usage_events.c.org_seq, usage_events.c.id).in_(chunk))
            )
            hashes.update({(row.org_seq, row.id): row.content_hash for row in rows})
        return hashes

    async def ingest(self, events: list[Arriving]) -> list[Stored]:
        # under the write lock (BEGIN IMMEDIATE) what is read is current
        conn = self._conn
        named = sorted({(a.org_seq, a.event.account_id) for a in events})
        account_seqs: dict[tuple[int, str], int] = {}
        for start in range(0, len(named), 400):
            rows = await conn.execute(
                select(accounts.c.seq, accounts.c.org_seq, accounts.c.id).where(
                    tuple_(accounts.c.org_seq, accounts.c.id).in_(named[start : start + 400]),
                    accounts.c.archived_at.is_(None),
                )
            )
            account_seqs.update({(row.org_seq, row.id): row.seq for row in rows})
        hashes = await self.event_hashes([(a.org_seq, a.event.id) for a in events])
        results = []
        new_rows = []
        for arriving in events:
            account_seq = account_seqs.get((arriving.org_seq, arriving.event.account_id))
            stored_hash = hashes.get((arriving.org_seq, arriving.event.id))
            if account_seq is None:
                results.append(Stored(Verdict.UNKNOWN_ACCOUNT, None))
            elif stored_hash is not None:
                same = stored_hash == arriving.content_hash
                verdict = Verdict.DUPLICATE if same else Verdict.CONFLICT
                results.append(Stored(verdict, account_seq))
            else:
                results.append(Stored(Verdict.NEW, account_seq))
                event = arriving.event
                new_rows.append(
                    {
                        "org_seq": arriving.org_seq,
                        "account_seq": account_seq,
                        "id": event.id,
                        "schema_name": event.schema_name,
                        "occurred_at": event.timestamp,
                        "content_hash": arriving.content_hash,
                        "content": event.content(),
                        "status": EventStatus.PENDING.value,
                        "received_at": arriving.received_at,
                    }
                )
        if new_rows:
            await conn.execute(usage_events.insert(), new_rows)
        return results

    async def _credits(self, condition: Any) -> list[CreditRecord]:
        if condition is None:
            return []
        rows = await self._conn.execute(select(credits).where(condition))
        return [CreditRecord.from_row(row) for row in rows]

    async def _load_applications(self, loaded: Loaded, wants: Wants) -> None:
        wanted = []
        for org_seq, account_id, invoice_id in wants.invoices:
            seq = loaded.account_ids.get((org_seq, account_id))
            if seq is not None:
                wanted.append((seq, invoice_id))
        if not wanted:
            return
        query = select(credit_applications).where(
            tuple_(credit_applications.c.account_seq, credit_applications.c.invoice_id).in_(wanted)
        )
        allocated: dict[int, set[str]] = {}
        for row in await self._conn.execute(query):
            account = loaded.accounts[row.account_seq]
            application = ApplicationRecord.from_row(row, account.id)
            loaded.applications[(account.seq, application.invoice_id)] = application
            allocated.setdefault(account.seq, set()).update(
                share.credit_id for line in application.lines for share in line.allocations
            )
        for account_seq, ids in allocated.items():
            found = await ledger.credits_by_id(self._conn, account_seq, ids)
            _keep(loaded, found.values())

    async def candidates(
        self, account_seq: int, as_of: date, offset: int, limit: int
    ) -> list[CreditRecord]:
        params = {"account_seq": account_seq, "as_of": as_of, "batch": limit, "offset": offset}
        rows = await self._conn.execute(_CANDIDATES, params)
        return [CreditRecord.from_row(row) for row in rows]

    async def active_credits(self, account_seq: int) -> list[CreditRecord]:
        return await ledger.active_credits(self._conn, account_seq)

    async def save(
        self, changes: Changes, *, added_to: dict[int, AccountRecord] | None = None
    ) -> None:
        # under the database's write lock the balances read are current: saving them whole
        # is the same as adding to them
        if not changes:
            return
        check_lines(changes)
        conn = self._conn
        seq_of = {credit.id: credit.seq for credit in changes.credits.values()}
        new = sorted(
            changes.new_credits,
            key=lambda c: (c.idempotency_key is None, c.idempotency_key or ""),
        )
        for credit in new:
            credit.seq = await ledger.insert_credit(conn, _credit_values(credit))
            seq_of[credit.id] = credit.seq
        for credit in changes.credits.values():
            amounts = credit.amounts
            await _one_row(
                conn,
                _SAVE_CREDIT,
                {
                    "b_seq": credit.seq,
                    "b_status": credit.status.value,
                    "b_consumed": amounts.consumed,
                    "b_held": amounts.held,
                    "b_expired": amounts.expired,
                    "b_voided": amounts.voided,
                    "b_updated_at": credit.updated_at,
                },
            )
        await ledger.insert_transactions(
            conn, [(seq_of[line.credit_id], line) for line in changes.lines]
        )
        for seq in sorted(accounts_written(changes)):
            account = changes.accounts.get(seq)
            if account is None:
                await _one_row(conn, _BUMP_VERSION, {"b_seq": seq})
                continue
            totals = account.totals
            await _one_row(
                conn,
                _WRITE_ACCOUNT,
                {
                    "b_seq": seq,
                    "b_active_amount": totals.active_amount,
                    "b_applicable_left": totals.applicable_left,
                    "b_applicable_held": totals.applicable_held,
                    "b_inapplicable_left": totals.inapplicable_left,
                    "b_as_of": account.as_of,
                    "b_valid_through": account.valid_through,
                    "b_updated_at": account.balance_updated_at,
                },
            )
        await self._save_usage(changes)
        await self._save_notices(changes)
        await self._save_wallets(changes)
        for seq, profile in sorted(changes.profiles.items()):
            await _one_row(
                conn,
                _WRITE_PROFILE,
                {
                    "b_seq": seq,
                    "b_name": profile.name,
                    "b_currency": profile.invoice_currency,
                    "b_status": profile.status,
                    "b_details": profile.details,
                    "b_updated_at": profile.updated_at,
                    "b_archived_at": profile.archived_at,
                },
            )
        for (account_seq, invoice_id), application in changes.applications.items():
            if application.seq != 0:
                await _one_row(
                    conn,
                    _UPDATE_APPLICATION,
                    {
                        "b_seq": application.seq,
                        "b_mode": application.mode.value,
                        "b_status": application.status.value,
                        "b_as_of": application.as_of,
                        "b_request_hash": application.request_hash,
                        "b_applied": application.applied,
                        "b_remaining": application.remaining,
                        "b_line_items": application.stored_lines(),
                        "b_updated_at": application.updated_at,
                    },
                )
                continue
            values = {
                "mode": application.mode.value,
                "status": application.status.value,
                "as_of": application.as_of,
                "request_hash": application.request_hash,
                "applied_amount": application.applied,
                "remaining_amount": application.remaining,
                "line_items": application.stored_lines(),
                "updated_at": application.updated_at,
            }
            org_seq = (
                await conn.execute(select(accounts.c.org_seq).where(accounts.c.seq == account_seq))
            ).scalar_one()
            result = await conn.execute(
                _INSERT_APPLICATION,
                {
                    **values,
                    "org_seq": org_seq,
                    "account_seq": account_seq,
                    "invoice_id": invoice_id,
                    "created_at": application.created_at,
                },
            )
            application.seq = int(result.scalar_one())

    async def _save_notices(self, changes: Changes) -> None:
        """The events with their deliveries, the alerts fired or armed again, and the
        usage.uncovered marks."""
        conn = self._conn
        await outbox.insert_events(conn, changes.outbox)
        for (account_seq, kind, threshold), fired_at in sorted(
            changes.alert_marks.items(), key=lambda item: (item[0][0], item[0][1], item[0][2])
        ):
            where = and_(
                alert_marks.c.account_seq == account_seq,
                alert_marks.c.kind == kind.value,
                alert_marks.c.threshold == threshold,
            )
            await conn.execute(delete(alert_marks).where(where))
            if fired_at is not None:
                await conn.execute(
                    alert_marks.insert().values(
                        account_seq=account_seq,
                        kind=kind.value,
                        threshold=threshold,
                        fired_at=fired_at,
                    )
                )
        for account_seq, mark in sorted(changes.uncovered.items()):
            await conn.execute(
                delete(uncovered_marks).where(uncovered_marks.c.account_seq == account_seq)
            )
            await conn.execute(
                uncovered_marks.insert().values(
                    account_seq=account_seq,
                    last_sent_at=mark.last_sent_at,
                    unreported=mark.unreported,
                    unreported_since=mark.unreported_since,
                )
            )

    async def _save_wallets(self, changes: Changes) -> None:
        conn = self._conn
        for wallet in changes.wallets.values():
            values = {
                "status": wallet.status.value,
                "effective_from": wallet.effective_from,
                "topped_up": wallet.topped_up,
                "consumed": wallet.consumed,
                "held": wallet.held,
                "entries": wallet.entries,
                "updated_at": wallet.updated_at,
            }
            if wallet.seq == 0:
                made = await conn.execute(
                    wallets_table.insert()
                    .values(
                        org_seq=wallet.org_seq,
                        account_seq=wallet.account_seq,
                        id=wallet.id,
                        account_id=wallet.account_id,
                        customer_id=wallet.customer_id,
                        currency=wallet.currency,
                        created_at=wallet.created_at,
                        **values,
                    )
                    .returning(wallets_table.c.seq)
                )
                wallet.seq = int(made.scalar_one())
            else:
                await _one_row(
                    conn,
                    update(wallets_table).where(wallets_table.c.seq == wallet.seq).values(values),
                    {},
                )
        if changes.wallet_entries:
            seq_of = {wallet.account_seq: wallet.seq for wallet in changes.wallets.values()}
            await conn.execute(
                wallet_entries.insert(),
                [
                    {
                        "wallet_seq": entry.wallet_seq or seq_of[entry.account_seq],
                        "id": entry.id,
                        "number": entry.number,
                        "entry_type": entry.entry_type.value,
                        "status": entry.status.value,
                        "amount": entry.amount,
                        "closing_balance": entry.closing_balance,
                        "entity_id": entry.entity_id,
                        "invoice_id": entry.invoice_id,
                        "created_at": entry.created_at,
                        "updated_at": entry.updated_at,
                    }
                    for entry in changes.wallet_entries
                ],
            )
        for change in changes.entry_changes.values():
            # only an ON_HOLD entry changes, once: one changed twice fails the save
            await _one_row(
                conn,
                update(wallet_entries)
                .where(
                    wallet_entries.c.id == change.entry_id,
                    wallet_entries.c.status == EntryStatus.ON_HOLD.value,
                )
                .values(status=change.status.value, updated_at=change.updated_at),
                {},
            )
        if changes.topup_keys:
            await conn.execute(
                wallet_topup_keys.insert(),
                [
                    {
                        "org_seq": key.org_seq,
                        "key": key.key,
                        "account_seq": key.account_seq,
                        "request_hash": key.request_hash,
                        "entry_id": key.entry_id,
                        "created_at": key.created_at,
                    }
                    for key in changes.topup_keys
                ],
            )

    async def _save_usage(self, changes: Changes) -> None:
        conn = self._conn
        if changes.events:
            applied = await conn.execute(
                _APPLY_EVENT,
                [
                    {
                        "b_seq": event.seq,
                        "b_status": event.status.value,
                        "b_results": event.stored_results(),
                        "b_meter_ids": event.meter_ids(),
                        "b_applied_at": event.applied_at,
                    }
                    for event in changes.events
                ],
            )
            if applied.rowcount != len(changes.events):
                raise RuntimeError(
                    f"the save applied {applied.rowcount} events, meant {len(changes.events)}"
                )
        for seq, through in sorted(changes.applied_through.items()):
            await _one_row(conn, _APPLIED_THROUGH, {"b_seq": seq, "b_through": through})
        if not changes.usage_sums:
            return
        # SQLite keeps the sums as decimal text: they are added here, exactly, not in SQL
        keys = sorted(changes.usage_sums)
        kept: dict[tuple[int, int], Any] = {}
        for start in range(0, len(keys), 400):
            rows = await conn.execute(
                select(usage_totals).where(
                    tuple_(usage_totals.c.account_seq, usage_totals.c.meter_seq).in_(
                        keys[start : start + 400]
                    )
                )
            )
            kept.update({(row.account_seq, row.meter_seq): row for row in rows})
        for key in keys:
            added = changes.usage_sums[key]
            row = kept.get(key)
            if row is None:
                org_seq = (
                    await conn.execute(select(accounts.c.org_seq).where(accounts.c.seq == key[0]))
                ).scalar_one()
                await conn.execute(
                    usage_totals.insert(),
                    {"account_seq": key[0], "meter_seq": key[1], "org_seq": org_seq}
                    | _sums_values(added),
                )
                continue
            before = UsageSums(
                row.quantity,
                row.cost,
                row.paid_by_credits,
                row.paid_by_wallet,
                row.uncovered,
                row.events,
            )
            await _one_row(
                conn,
                update(usage_totals)
                .where(
                    and_(usage_totals.c.account_seq == key[0], usage_totals.c.meter_seq == key[1])
                )
                .values(_sums_values(before + added)),
                {},
            )


def _sums_values(sums: UsageSums) -> dict[str, Any]:
    return {
        "quantity": sums.quantity,
        "cost": sums.cost,
        "paid_by_credits": sums.paid_by_credits,
        "paid_by_wallet": sums.paid_by_wallet,
        "uncovered": sums.uncovered,
        "events": sums.events,
    }


async def _one_row(conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> None:
    """Run an UPDATE that must change exactly one row: one that is not there fails the save,
    and the whole transaction rolls back."""
    result = await conn.execute(statement, params)
    if result.rowcount != 1:
        raise RuntimeError(f"the save changed {result.rowcount} rows where it meant one")


def _keep(loaded: Loaded, found: Iterable[CreditRecord]) -> None:
    for credit in found:
        loaded.credits[credit.id] = credit


def _credit_values(credit: CreditRecord) -> dict[str, Any]:
    amounts = credit.amounts
    return {
        "org_seq": credit.org_seq,
        "account_seq": credit.account_seq,
        "id": credit.id,
        "account_id": credit.account_id,
        "customer_id": credit.customer_id,
        "credit_unit": credit.credit_unit,
        "purpose": credit.purpose,
        "applicable_entity_ids": credit.applicable_entity_ids,
        "effective_from": credit.effective_from,
        "effective_until": credit.effective_until,
        "credit_amount": amounts.credit_amount,
        "priority": credit.priority,
        "grantor_id": credit.grantor_id,
        "idempotency_key": credit.idempotency_key,
        "request_hash": credit.request_hash,
        "status": credit.status.value,
        "consumed_amount": amounts.consumed,
        "hold_amount": amounts.held,
        "expired_amount": amounts.expired,
        "voided_amount": amounts.voided,
        "created_at": credit.created_at,
        "updated_at": credit.updated_at,
    }


class SqliteStore:
    def __init__(
        self,
        engine: AsyncEngine,
        turn: Callable[[], AbstractAsyncContextManager[None]] = nullcontext,
    ) -> None:
        self._engine = engine
        # the process's writers take turns (Database.writer_turn)
        self._turn = turn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        async with self._turn(), self._engine.connect() as conn:
            await conn.execution_options(drawdown_write=True)
            async with conn.begin():
                tx = SqliteTransaction(conn)
                yield tx
