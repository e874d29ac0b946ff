"""The wallet's rules as pure code (docs/wallet.md): its arithmetic and entries, top-ups with
their keys, status changes, and the wallet as the last payer after the credits in applications
(HOLD, DEBIT, capture, release, useWallet) and in usage burn-down; account updates and
deletes. Through the decisions and the in-memory store of tests/memory_ledger.py."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from drawdown.errors import Conflict, NotFound
from drawdown.ledger import burning, decisions
from drawdown.ledger.application import ApplicationStatus
from drawdown.ledger.changes import Holdings, Loaded
from drawdown.ledger.lifecycle import AccountUpdate
from drawdown.ledger.money import ZERO
from drawdown.ledger.records import ApplicationRecord
from drawdown.ledger.usage import Aggregation, Meter, MeterStatus, Rate
from drawdown.ledger.usage_records import PendingEvent
from drawdown.ledger.wallet import (
    EntryStatus,
    EntryType,
    WalletBook,
    WalletEntryRecord,
    WalletStatus,
    new_wallet,
)
from tests.memory_ledger import Apply, MemoryLedger, Settle, SetWallet, TopUp, run_group
from tests.test_decisions import ACC, ORG, application, debit, ledger_with, request

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
TODAY = NOW.date()
D = Decimal
WIDEST = D("999999999999999999.9999999999")


def running_balances(entries: list[WalletEntryRecord]) -> Iterator[tuple[Decimal, Decimal]]:
    """(closingBalance, running balance) of each entry, in entry order (docs/wallet.md)."""
    running = ZERO
    for entry in sorted(entries, key=lambda e: e.number):
        if entry.entry_type is EntryType.DEBITED:
            running -= entry.amount
        else:
            running += entry.amount
        yield entry.closing_balance, running


def assert_wallet_sound(store: MemoryLedger, account_seq: int) -> None:
    wallet = store.wallets[account_seq]
    entries = [e for e in store.entries.values() if e.account_seq == account_seq]
    assert [e.number for e in sorted(entries, key=lambda e: e.number)] == list(
        range(1, wallet.entries + 1)
    )
    for closing, running in running_balances(entries):
        assert closing == running
    credited = sum((e.amount for e in entries if e.entry_type is EntryType.CREDITED), ZERO)
    debited = [e for e in entries if e.entry_type is EntryType.DEBITED]
    on_hold = sum((e.amount for e in debited if e.status is EntryStatus.ON_HOLD), ZERO)
    completed = sum((e.amount for e in debited if e.status is EntryStatus.COMPLETED), ZERO)
    assert (wallet.topped_up, wallet.held, wallet.consumed) == (credited, on_hold, completed)
    assert wallet.balance >= 0 and wallet.held >= 0


def store_with_wallet(amount: Decimal | int, *grants: object) -> MemoryLedger:
    store = ledger_with(*grants)  # type: ignore[arg-type]
    [wallet] = run_group(store, ORG, [TopUp(ACC, D(amount))], NOW)
    assert wallet.balance == D(amount)
    return store


def seq(store: MemoryLedger) -> int:
    return next(a.seq for a in store.accounts.values() if a.id == ACC)


# -- the wallet alone --------------------------------------------------------------------------


def test_a_book_writes_numbered_entries_with_their_closing_balances() -> None:
    wallet = new_wallet(ORG, 1, ACC, "cust", "USD", NOW)
    assert wallet.id.startswith("wallet.") and len(wallet.id.split(".")[1]) == 11
    book = WalletBook(wallet, NOW)
    book.top_up(D(100))
    held = book.hold(D("30.5"), "inv-1")
    book.top_up(D("0.0000000001"))
    book.release(held.id, D("30.5"), "inv-1")
    spent = book.debit(D(20), "um.api")
    assert book.wallet.balance == D("80.0000000001")
    assert [(e.number, e.entry_type, e.closing_balance) for e in book.entries] == [
        (1, EntryType.CREDITED, D(100)),
        (2, EntryType.DEBITED, D("69.5")),
        (3, EntryType.CREDITED, D("69.5000000001")),
        (4, EntryType.RELEASED, D("100.0000000001")),
        (5, EntryType.DEBITED, D("80.0000000001")),
    ]
    assert [(c.entry_id, c.status) for c in book.changes] == [(held.id, EntryStatus.RELEASED)]
    assert spent.status is EntryStatus.COMPLETED and book.wallet.held == 0
    assert (wallet.topped_up, wallet.entries) == (ZERO, 0), "the book works on a copy"


def test_a_book_never_pays_more_than_the_balance() -> None:
    book = WalletBook(new_wallet(ORG, 1, ACC, "cust", "USD", NOW), NOW)
    book.top_up(D(5))
    with pytest.raises(AssertionError):
        book.hold(D("5.0000000001"), "inv")
    with pytest.raises(AssertionError):
        book.debit(D(0), "um.api")


def test_totals_past_28_digits_conflict() -> None:
    wallet = new_wallet(ORG, 1, ACC, "cust", "USD", NOW)
    book = WalletBook(replace(wallet, topped_up=D("9999999999000000000000000000")), NOW)
    book.top_up(WIDEST)
    with pytest.raises(Conflict, match="28 digits"):
        book.top_up(WIDEST)


def test_in_effect_by_the_utc_day_of_effective_from_and_only_when_active() -> None:
    wallet = new_wallet(ORG, 1, ACC, "cust", "USD", datetime(2026, 11, 24, 23, 59, tzinfo=UTC))
    assert wallet.pays_on(TODAY) and not wallet.pays_on(TODAY - timedelta(days=1))
    assert not replace(wallet, status=WalletStatus.INACTIVE).pays_on(TODAY)


# -- top-ups and status ------------------------------------------------------------------------


def test_the_first_top_up_makes_the_wallet_and_a_key_answers_again() -> None:
    store = ledger_with()
    first, again, other, elsewhere = run_group(
        store,
        ORG,
        [TopUp(ACC, D(10), "k"), TopUp(ACC, D(10), "k"), TopUp(ACC, D(11), "k"), TopUp("x", 1)],
        NOW,
    )
    assert first.status is WalletStatus.ACTIVE and first.effective_from == NOW
    assert again.balance == D(10)
    assert isinstance(other, Conflict) and "Idempotency-Key 'k'" in other.message
    assert isinstance(elsewhere, NotFound)
    [later] = run_group(store, ORG, [TopUp(ACC, D(10), "k")], NOW)
    assert later.balance == D(10) and len(store.entries) == 1
    assert_wallet_sound(store, seq(store))


def test_update_without_a_wallet_is_not_found_and_changes_are_kept() -> None:
    store = ledger_with()
    [missing] = run_group(store, ORG, [SetWallet(ACC, WalletStatus.INACTIVE)], NOW)
    assert isinstance(missing, NotFound) and "has no wallet" in missing.message
    run_group(store, ORG, [TopUp(ACC, D(1))], NOW)
    later = NOW + timedelta(days=3)
    [changed] = run_group(store, ORG, [SetWallet(ACC, WalletStatus.INACTIVE, later)], NOW)
    assert (changed.status, changed.effective_from) == (WalletStatus.INACTIVE, later)
    [same] = run_group(store, ORG, [SetWallet(ACC)], NOW)
    assert same == changed


# -- applications: credits first, then the wallet ----------------------------------------------


def test_the_wallet_pays_what_the_credits_leave_per_line_item() -> None:
    store = store_with_wallet(25, request(50))
    [held] = run_group(store, ORG, [Apply(ACC, application("inv", 40, 30, 10))], NOW)
    assert isinstance(held, ApplicationRecord)
    paid = [
        ([a.amount for a in line.allocations], line.wallet.amount if line.wallet else None)
        for line in held.lines
    ]
    assert paid == [([D(40)], None), ([D(10)], D(20)), ([], D(5))]
    assert held.applied == D(75) and held.remaining == D(5)
    wallet = store.wallets[seq(store)]
    assert (wallet.balance, wallet.held) == (ZERO, D(25))
    [entry] = [e for e in store.entries.values() if e.status is EntryStatus.ON_HOLD]
    assert (entry.amount, entry.entity_id, entry.invoice_id) == (D(25), "inv", "inv")
    assert {line.wallet.entry_id for line in held.lines if line.wallet} == {entry.id}
    assert_wallet_sound(store, seq(store))


def test_capture_completes_the_hold_and_release_gives_it_back() -> None:
    store = store_with_wallet(100)
    run_group(store, ORG, [Apply(ACC, application("a", 30)), Apply(ACC, application("b", 20))], NOW)
    captured, released = run_group(
        store, ORG, [Settle("capture", ACC, "a"), Settle("release", ACC, "b")], NOW
    )
    assert captured.status is ApplicationStatus.DEBITED
    assert released.status is ApplicationStatus.RELEASED
    wallet = store.wallets[seq(store)]
    assert (wallet.balance, wallet.held, wallet.consumed) == (D(70), ZERO, D(30))
    statuses = sorted((e.entry_type, e.status, e.amount) for e in store.entries.values())
    assert statuses == [
        (EntryType.CREDITED, EntryStatus.COMPLETED, D(100)),
        (EntryType.DEBITED, EntryStatus.COMPLETED, D(30)),
        (EntryType.DEBITED, EntryStatus.RELEASED, D(20)),
        (EntryType.RELEASED, EntryStatus.COMPLETED, D(20)),
    ]
    assert_wallet_sound(store, seq(store))


def test_debit_writes_one_completed_entry_and_use_wallet_false_opts_out() -> None:
    store = store_with_wallet(10, request(5))
    [debited] = run_group(store, ORG, [Apply(ACC, debit("d", 12))], NOW)
    assert debited.applied == D(12) and debited.lines[0].wallet.amount == D(7)
    wallet = store.wallets[seq(store)]
    assert (wallet.balance, wallet.consumed, wallet.held) == (D(3), D(7), ZERO)
    out = replace(application("o", 2), use_wallet=False)
    [held] = run_group(store, ORG, [Apply(ACC, out)], NOW)
    assert held.applied == ZERO and held.lines[0].wallet is None
    assert out.fingerprint() != application("o", 2).fingerprint()
    assert replace(out, use_wallet=True).fingerprint() == application("o", 2).fingerprint()
    assert_wallet_sound(store, seq(store))


def test_a_held_invoice_applied_again_releases_its_wallet_hold_first() -> None:
    store = store_with_wallet(10)
    run_group(store, ORG, [Apply(ACC, application("inv", 8))], NOW)
    # re-held in one group, twice: the second releases the first's entry written in the group
    results = run_group(
        store, ORG, [Apply(ACC, application("inv", 9)), Apply(ACC, application("inv", 10))], NOW
    )
    assert [r.applied for r in results] == [D(9), D(10)]
    wallet = store.wallets[seq(store)]
    assert (wallet.balance, wallet.held) == (ZERO, D(10))
    on_hold = [e for e in store.entries.values() if e.status is EntryStatus.ON_HOLD]
    assert [e.amount for e in on_hold] == [D(10)]
    assert_wallet_sound(store, seq(store))


def test_an_inactive_or_later_wallet_pays_nothing_new_but_settles_its_holds() -> None:
    store = store_with_wallet(10)
    run_group(store, ORG, [Apply(ACC, application("held", 4))], NOW)
    run_group(store, ORG, [SetWallet(ACC, WalletStatus.INACTIVE)], NOW)
    [refused] = run_group(store, ORG, [Apply(ACC, application("new", 4))], NOW)
    assert refused.applied == ZERO
    [captured] = run_group(store, ORG, [Settle("capture", ACC, "held")], NOW)
    assert captured.applied == D(4)
    tomorrow = NOW + timedelta(days=1)
    run_group(store, ORG, [SetWallet(ACC, WalletStatus.ACTIVE, tomorrow)], NOW)
    [today] = run_group(store, ORG, [Apply(ACC, application("t", 1))], NOW)
    [later] = run_group(store, ORG, [Apply(ACC, application("l", 1, as_of=tomorrow.date()))], NOW)
    assert (today.applied, later.applied) == (ZERO, D(1))
    assert_wallet_sound(store, seq(store))


# -- usage: after the credits, one entry per meter per batch -----------------------------------


def meter(meter_id: str) -> Meter:
    return Meter(
        seq=hash(meter_id) % 1000,
        org_seq=ORG,
        id=meter_id,
        name=meter_id,
        event_schema_name="call",
        aggregation=Aggregation.COUNT,
        attribute=None,
        filters=(),
        status=MeterStatus.ACTIVE,
        rates=(Rate(D(3), D(1), None),),
        created_at=NOW,
        updated_at=NOW,
    )


def test_usage_draws_credits_then_the_wallet_then_leaves_the_rest_uncovered() -> None:
    store = store_with_wallet(7, request(5))
    loaded: Loaded = store.load(today=TODAY, accounts={(ORG, ACC)}, candidates={(ORG, ACC, TODAY)})
    account_seq = seq(store)
    loaded.pending[account_seq] = [
        PendingEvent(n, account_seq, f"e{n}", "call", NOW - timedelta(minutes=n), {}, {})
        for n in (1, 2, 3, 4)
    ]
    loaded.meters[ORG] = [meter("um.a"), meter("um.b")]
    outcome, changes = burning.burn(loaded, account_seq, NOW)
    assert outcome.applied == 4
    charges = [c for event in changes.events for c in event.charges]
    assert [(c.meter_id, c.paid_by_credits, c.paid_by_wallet, c.uncovered) for c in charges] == [
        ("um.a", D(3), ZERO, ZERO),
        ("um.b", D(2), D(1), ZERO),
        ("um.a", ZERO, D(3), ZERO),
        ("um.b", ZERO, D(3), ZERO),
        ("um.a", ZERO, ZERO, D(3)),
        ("um.b", ZERO, ZERO, D(3)),
        ("um.a", ZERO, ZERO, D(3)),
        ("um.b", ZERO, ZERO, D(3)),
    ]
    entries = {e.entity_id: e for e in changes.wallet_entries}
    assert {k: e.amount for k, e in entries.items()} == {"um.b": D(4), "um.a": D(3)}
    assert all(e.status is EntryStatus.COMPLETED and e.invoice_id is None for e in entries.values())
    for c in charges:
        if c.wallet is not None:
            assert c.wallet.entry_id == entries[c.meter_id].id
    assert changes.wallets[account_seq].balance == ZERO
    sums = sum((s.paid_by_wallet for s in changes.usage_sums.values()), ZERO)
    assert sums == D(7)


# -- account updates and deletes ----------------------------------------------------------------


def lifecycle_load(store: MemoryLedger, held: tuple[str, ...] = ()) -> Loaded:
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    loaded.holdings[seq(store)] = Holdings(bool(store.credits), held)
    return loaded


def test_a_currency_change_is_refused_once_credits_or_a_wallet_exist() -> None:
    update = AccountUpdate(name="Renamed", invoice_currency="EUR", details={"tags": ["x"]})
    empty = ledger_with()
    changed, changes = decisions.update_account(lifecycle_load(empty), ORG, ACC, update, NOW)
    assert (changed.name, changed.invoice_currency, changed.details) == (
        "Renamed",
        "EUR",
        {"tags": ["x"]},
    )
    assert changes.profiles[seq(empty)] == changed
    for store in (ledger_with(request(1)), store_with_wallet(1)):
        with pytest.raises(Conflict, match="invoiceCurrency cannot change from USD to EUR"):
            decisions.update_account(lifecycle_load(store), ORG, ACC, update, NOW)
        same = AccountUpdate(invoice_currency="USD", status="DRAFT")
        kept, _ = decisions.update_account(lifecycle_load(store), ORG, ACC, same, NOW)
        assert (kept.invoice_currency, kept.status) == ("USD", "DRAFT")


def test_a_delete_names_what_remains_and_archives_only_an_empty_account() -> None:
    store = store_with_wallet(3, request(5))
    run_group(store, ORG, [Apply(ACC, application("inv-1", 6))], NOW)
    with pytest.raises(Conflict) as refused:
        decisions.archive_account(lifecycle_load(store, ("inv-1",)), ORG, ACC, NOW)
    message = refused.value.message
    assert "credits with 5 left (5 of it held)" in message
    assert "a wallet with a balance of 2 and 1 held" in message
    assert "'inv-1'" in message
    run_group(store, ORG, [Settle("capture", ACC, "inv-1")], NOW)
    run_group(store, ORG, [Apply(ACC, debit("inv-2", 2))], NOW)
    _, changes = decisions.archive_account(lifecycle_load(store), ORG, ACC, NOW)
    archived = changes.profiles[seq(store)]
    assert archived.archived_at == NOW
    store.save(changes)
    with pytest.raises(NotFound):
        decisions.archive_account(lifecycle_load(store), ORG, ACC, NOW)
    [topup] = run_group(store, ORG, [TopUp(ACC, D(1))], NOW)
    assert isinstance(topup, NotFound)
