"""The write decisions of ledger/ (grant, HOLD/DEBIT, capture, release, void, bring to today)
without a database: each edge on its own, then random histories through an in-memory store
(tests/memory_ledger.py, which plays the coalescer) compared at every step with the
independent reference model, and the worked vectors."""

import copy
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drawdown.errors import BadRequest, Conflict, DrawdownError, NotFound
from drawdown.ledger import decisions
from drawdown.ledger.allocation import EntityType, LineItem
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.records import AccountRecord, ApplicationRecord, CreditRecord
from drawdown.ledger.requests import ApplicationRequest, GrantRequest
from tests.memory_ledger import Apply, Grant, MemoryLedger, Settle, Void, Write, run_group
from tests.reference_model import Account, Answer, Item, units
from tests.reference_model import Application as ModelApplication
from tests.reference_model import amount as reference_amount
from tests.test_properties import (
    ENTITIES,
    INVOICES,
    LARGEST,
    SCOPES,
    SMALLEST,
    amounts,
    days,
    line_items,
)
from tests.test_vectors import CASES as VECTOR_CASES
from tests.test_vectors import _created_at as vector_created_at
from tests.test_vectors import _expected as vector_expected

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
TODAY = NOW.date()
ORG = 1
ACC = "acc"
D = Decimal
USAGE = EntityType.USAGE_METER_RATE_CARD


def request(
    amount: Decimal | int | str = 100,
    *,
    account: str = ACC,
    key: str | None = None,
    start: date = date(2026, 1, 1),
    until: date | None = None,
    priority: int = 1,
    scope: tuple[str, ...] | None = None,
) -> GrantRequest:
    return GrantRequest(
        account_id=account,
        purpose="PREPAID_CREDIT",
        applicable_entity_ids=scope,
        effective_from=start,
        effective_until=until,
        credit_amount=D(amount),
        priority=priority,
        grantor_id=None,
        idempotency_key=key,
    )


def application(
    invoice: str,
    *amounts: Decimal | int | str,
    mode: ApplicationMode = ApplicationMode.HOLD,
    entity: str = "um.api",
    as_of: date | None = None,
) -> ApplicationRequest:
    return ApplicationRequest(
        invoice_id=invoice,
        mode=mode,
        as_of=as_of,
        line_items=tuple(LineItem(entity, USAGE, D(a)) for a in amounts),
    )


def debit(invoice: str, *amounts: Decimal | int | str) -> ApplicationRequest:
    return application(invoice, *amounts, mode=ApplicationMode.DEBIT)


def ledger_with(*grants: GrantRequest, accounts: tuple[str, ...] = (ACC,)) -> MemoryLedger:
    store = MemoryLedger()
    for account_id in accounts:
        store.add_account(ORG, account_id)
    for grant in grants:
        [outcome] = run_group(store, ORG, [Grant((grant,))], NOW)
        assert isinstance(outcome, list), outcome
    return store


def ids_in_order(store: MemoryLedger) -> list[str]:
    return [c.id for c in sorted(store.credits.values(), key=lambda c: c.seq)]


def lines_of(store: MemoryLedger, credit_id: str) -> list[tuple[str, Decimal]]:
    return [(line.transaction_type.value, line.amount) for line in store.lines[credit_id]]


def load_for(store: MemoryLedger, *, as_of: date = TODAY, invoices: tuple[str, ...] = ()) -> Loaded:
    return store.load(
        today=TODAY,
        accounts={(ORG, ACC)},
        credits={(ORG, c) for c in store.credits},
        invoices={(ORG, ACC, i) for i in invoices},
        candidates={(ORG, ACC, as_of)},
    )


def account(store: MemoryLedger, account_id: str = ACC) -> AccountRecord:
    return next(a for a in store.accounts.values() if a.id == account_id)


# -- bringing an account to today ------------------------------------------------------------


def test_needs_bringing_only_past_the_day_the_totals_hold_through() -> None:
    store = MemoryLedger()
    kept = store.add_account(ORG, ACC, as_of=TODAY, valid_through=TODAY)
    assert not decisions.needs_bringing(kept, NOW)
    assert decisions.needs_bringing(kept, NOW + timedelta(days=1))
    assert not decisions.needs_bringing(replace(kept, valid_through=None), NOW + timedelta(days=9))
    # the book day is never before the day the totals were counted for
    ahead = replace(kept, as_of=TODAY + timedelta(days=1), valid_through=TODAY)
    assert decisions.needs_bringing(ahead, NOW)


def test_bring_to_today_expires_and_recounts_from_the_active_credits() -> None:
    store = ledger_with(
        request(100, until=TODAY),
        request(40, start=TODAY + timedelta(days=1)),
        request(7),
    )
    short, later, plain = ids_in_order(store)
    [held] = run_group(store, ORG, [Apply(ACC, application("inv", 30))], NOW)
    assert isinstance(held, ApplicationRecord)
    assert held.lines[0].allocations[0].credit_id == short
    tomorrow = NOW + timedelta(days=1)
    loaded = store.load(today=tomorrow.date(), accounts={(ORG, ACC)})
    seq = loaded.account_ids[(ORG, ACC)]
    assert seq in loaded.active
    untouched = copy.deepcopy(loaded)
    changes = decisions.bring_to_today(loaded, seq, tomorrow)
    assert loaded == untouched
    expired = changes.credits[short]
    assert expired.status is CreditStatus.EXPIRED
    assert (expired.amounts.expired, expired.amounts.held) == (D(70), D(30))
    assert expired.updated_at == tomorrow
    assert [(x.credit_id, x.transaction_type, x.amount) for x in changes.lines] == [
        (short, TransactionType.EXPIRED, D(70))
    ]
    brought = changes.accounts[seq]
    assert brought.totals == BalanceTotals(D(47), D(47), D(0), D(0))
    assert (brought.as_of, brought.valid_through, brought.balance_updated_at) == (
        tomorrow.date(),
        None,
        tomorrow,
    )
    assert set(changes.credits) == {short}
    assert later and plain


def test_bring_to_today_changes_nothing_when_nothing_is_due_unless_asked_to_recount() -> None:
    store = ledger_with(request(100, until=TODAY + timedelta(days=3)))
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    seq = loaded.account_ids[(ORG, ACC)]
    assert not decisions.bring_to_today(loaded, seq, NOW)
    store.load_active(loaded, seq)
    later = NOW + timedelta(minutes=5)
    recounted = decisions.bring_to_today(loaded, seq, later, recount=True)
    assert set(recounted.accounts) == {seq} and not recounted.credits and not recounted.lines
    assert recounted.accounts[seq].totals == loaded.accounts[seq].totals
    assert recounted.accounts[seq].balance_updated_at == later


def test_a_decision_on_a_stale_account_brings_it_first() -> None:
    store = ledger_with(request(100, until=TODAY), request(5))
    short, plain = ids_in_order(store)
    tomorrow = NOW + timedelta(days=1)
    loaded = store.load(
        today=tomorrow.date(), accounts={(ORG, ACC)}, candidates={(ORG, ACC, tomorrow.date())}
    )
    credit, changes = decisions.void(loaded, ORG, plain, tomorrow)
    assert credit.status is CreditStatus.VOIDED
    assert changes.credits[short].status is CreditStatus.EXPIRED
    assert [x.transaction_type for x in changes.lines] == [
        TransactionType.EXPIRED,
        TransactionType.VOIDED,
    ]
    seq = loaded.account_ids[(ORG, ACC)]
    assert changes.accounts[seq].totals == BalanceTotals()
    # without the active credits loaded, the caller broke the contract: said plainly
    del loaded.active[seq]
    with pytest.raises(LookupError, match="active credits"):
        decisions.void(loaded, ORG, plain, tomorrow)


# -- grants ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            [request(until=date(2025, 12, 31))],
            "request.effectiveUntil (2025-12-31) must not be before effectiveFrom (2026-01-01)",
        ),
        (
            [request(), request(until=date(2025, 1, 1))],
            "creditRequests[1].effectiveUntil (2025-01-01) must not be before effectiveFrom "
            "(2026-01-01)",
        ),
        (
            [request(scope=("um.api", "um.api"))],
            "request.applicableEntityIds must not repeat an entity id",
        ),
        (
            [request(key="k"), request(key="k")],
            "creditRequests[1].idempotencyKey 'k' appears twice in this batch",
        ),
    ],
)
def test_a_bad_batch_is_refused_with_todays_words(batch: list[GrantRequest], message: str) -> None:
    store = ledger_with()
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    with pytest.raises(BadRequest) as refused:
        decisions.grant(loaded, ORG, batch, NOW)
    assert refused.value.message == message


def test_a_batch_naming_an_unknown_account_grants_nothing() -> None:
    store = ledger_with(accounts=(ACC, "other"))
    loaded = store.load(today=TODAY, accounts={(ORG, ACC), (ORG, "nope"), (ORG, "other")})
    before = copy.deepcopy(loaded)
    with pytest.raises(NotFound) as refused:
        decisions.grant(loaded, ORG, [request(), request(account="nope")], NOW)
    assert refused.value.message == "account 'nope' was not found"
    assert loaded == before


def test_a_grant_writes_the_credit_its_line_and_the_balance() -> None:
    store = ledger_with()
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    seq = loaded.account_ids[(ORG, ACC)]
    [credit], changes = decisions.grant(
        loaded, ORG, [request(10, until=TODAY + timedelta(days=3))], NOW
    )
    assert changes.new_credits == [credit] and not changes.credits
    assert (credit.seq, credit.account_seq, credit.status) == (0, seq, CreditStatus.ACTIVE)
    assert (credit.created_at, credit.updated_at, credit.credit_unit) == (NOW, NOW, "USD")
    assert credit.request_hash == request(10, until=TODAY + timedelta(days=3)).fingerprint()
    [line] = changes.lines
    assert (line.credit_id, line.transaction_type, line.amount, line.created_at) == (
        credit.id,
        TransactionType.CREDITED,
        D(10),
        NOW,
    )
    kept = changes.accounts[seq]
    assert kept.totals == BalanceTotals(D(10), D(10), D(0), D(0))
    assert (kept.as_of, kept.valid_through, kept.balance_updated_at) == (
        TODAY,
        TODAY + timedelta(days=3),
        NOW,
    )
    assert loaded.accounts[seq].totals == BalanceTotals()


def test_a_batch_is_granted_in_key_order_and_answered_in_request_order() -> None:
    store = ledger_with(accounts=(ACC, "b"))
    batch = [request(1, key="z"), request(2, account="b"), request(3, key="a")]
    [outcome] = run_group(store, ORG, [Grant(tuple(batch))], NOW)
    assert [c.amounts.credit_amount for c in outcome] == [D(1), D(2), D(3)]
    # inserted (and their ids made) by key, keys first: a, z, then the one without
    assert [store.credits[i].amounts.credit_amount for i in ids_in_order(store)] == [
        D(3),
        D(1),
        D(2),
    ]
    assert ids_in_order(store) == sorted(ids_in_order(store))
    assert [a.totals.active_amount for a in store.accounts.values()] == [D(4), D(2)]


def test_a_replayed_key_answers_the_earlier_credit_and_a_different_ask_conflicts() -> None:
    store = ledger_with(request(5, key="k"))
    [earlier] = ids_in_order(store)
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)}, keys={(ORG, "k")})
    [same], changes = decisions.grant(loaded, ORG, [request(5, key="k")], NOW)
    assert same.id == earlier and same == store.credits[earlier]
    assert not changes
    with pytest.raises(Conflict) as refused:
        decisions.grant(loaded, ORG, [request(6), request(5, key="k", priority=2)], NOW)
    assert refused.value.message == (
        "idempotencyKey 'k' was already used for a different credit request; use a new key for "
        "a new grant"
    )
    # the key of another organization is another key
    store.add_account(2, ACC)
    [other] = run_group(store, 2, [Grant((request(5, key="k"),))], NOW)
    assert isinstance(other, list) and other[0].id != earlier


def test_a_key_granted_earlier_in_the_group_is_replayed_in_the_group() -> None:
    store = ledger_with()
    first, again, different = run_group(
        store,
        ORG,
        [Grant((request(amount, key="k"),)) for amount in (5, 5, 6)],
        NOW,
    )
    assert first[0].id == again[0].id
    assert isinstance(different, Conflict)
    assert len(store.credits) == 1


def test_a_back_dated_grant_past_its_last_day_expires_at_once() -> None:
    store = ledger_with(request(3))
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    seq = loaded.account_ids[(ORG, ACC)]
    [credit], changes = decisions.grant(
        loaded, ORG, [request(9, start=date(2026, 1, 1), until=TODAY - timedelta(days=1))], NOW
    )
    assert credit.status is CreditStatus.EXPIRED
    assert credit.amounts.expired == D(9)
    assert changes.new_credits == [credit]
    assert [(x.transaction_type, x.amount) for x in changes.lines] == [
        (TransactionType.CREDITED, D(9)),
        (TransactionType.EXPIRED, D(9)),
    ]
    assert not changes.accounts  # the balance does not change
    # one expiring on the writer's own day is still in effect
    [today_only], changes = decisions.grant(loaded, ORG, [request(9, until=TODAY)], NOW)
    assert today_only.status is CreditStatus.ACTIVE
    assert changes.accounts[seq].valid_through == TODAY


def test_a_grant_past_the_total_digits_conflicts_and_changes_nothing() -> None:
    store = MemoryLedger()
    near = D(10) ** 28 - D(5)
    store.add_account(ORG, ACC, totals=BalanceTotals(near, near, D(0), D(0)), as_of=TODAY)
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    before = copy.deepcopy(loaded)
    with pytest.raises(Conflict) as refused:
        decisions.grant(loaded, ORG, [request(1), request(LARGEST)], NOW)
    assert refused.value.message == (
        "the account's total would exceed 28 digits before the decimal point; nothing was changed"
    )
    assert loaded == before
    [fits], _ = decisions.grant(loaded, ORG, [request(4)], NOW)
    assert fits.amounts.credit_amount == D(4)


def test_balance_updated_at_never_goes_backwards_and_the_book_day_never_either() -> None:
    ahead = NOW + timedelta(days=1, hours=3)
    store = MemoryLedger()
    store.add_account(ORG, ACC, as_of=ahead.date(), updated_at=ahead)
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    seq = loaded.account_ids[(ORG, ACC)]
    # a writer whose clock is behind: the credit starting tomorrow (its day) is applicable
    [credit], changes = decisions.grant(loaded, ORG, [request(8, start=ahead.date())], NOW)
    kept = changes.accounts[seq]
    assert (kept.as_of, kept.balance_updated_at) == (ahead.date(), ahead)
    assert kept.totals == BalanceTotals(D(8), D(8), D(0), D(0))
    assert credit.created_at == NOW


# -- applications ----------------------------------------------------------------------------


def test_need_candidates_when_the_day_was_not_loaded() -> None:
    store = ledger_with(request(10))
    loaded = load_for(store, as_of=TODAY)
    seq = loaded.account_ids[(ORG, ACC)]
    with pytest.raises(NeedCandidates) as need:
        decisions.apply(loaded, ORG, ACC, application("inv", 1, as_of=TODAY - timedelta(1)), NOW)
    assert (need.value.account_seq, need.value.as_of, need.value.have) == (
        seq,
        TODAY - timedelta(days=1),
        0,
    )


def test_need_candidates_only_while_something_is_unpaid_and_more_may_exist() -> None:
    store = ledger_with(*[request(10) for _ in range(4)])
    store.first = 2
    loaded = load_for(store)
    seq = loaded.account_ids[(ORG, ACC)]
    assert loaded.complete[(seq, TODAY)] is False
    paid, _ = decisions.apply(loaded, ORG, ACC, application("inv", 20), NOW)
    assert paid.remaining == 0
    with pytest.raises(NeedCandidates) as need:
        decisions.apply(loaded, ORG, ACC, application("inv", 21), NOW)
    assert need.value.have == 2
    store.load_candidates(loaded, seq, TODAY, 8)
    assert loaded.complete[(seq, TODAY)] is True
    short, _ = decisions.apply(loaded, ORG, ACC, application("inv", 50), NOW)
    assert (short.applied, short.remaining) == (D(40), D(10))


def test_need_candidates_when_the_listed_ones_cannot_pay_this_entity() -> None:
    """Listed credits with money left, but scoped elsewhere: a credit further down may pay."""
    store = ledger_with(request(10, priority=0, scope=("ff.seat",)), request(10, priority=5))
    store.first = 1
    loaded = load_for(store)
    with pytest.raises(NeedCandidates):
        decisions.apply(loaded, ORG, ACC, application("inv", 3), NOW)
    [outcome] = run_group(store, ORG, [Apply(ACC, application("inv", 3))], NOW)
    assert isinstance(outcome, ApplicationRecord)
    assert outcome.lines[0].allocations[0].credit_id == ids_in_order(store)[1]


def test_a_hold_then_its_capture_in_one_group() -> None:
    store = ledger_with(request(10), request(10, priority=2))
    first, second = ids_in_order(store)
    held, captured = run_group(
        store,
        ORG,
        [Apply(ACC, application("inv", 4, 8)), Settle("capture", ACC, "inv")],
        NOW,
    )
    assert isinstance(held, ApplicationRecord) and held.status is ApplicationStatus.HELD
    assert isinstance(captured, ApplicationRecord)
    assert captured.status is ApplicationStatus.DEBITED and captured.updated_at == NOW
    [stored] = store.applications.values()
    assert stored.status is ApplicationStatus.DEBITED and stored.seq > 0
    assert [(a.credit_id, a.amount) for line in stored.lines for a in line.allocations] == [
        (first, D(4)),
        (first, D(6)),
        (second, D(2)),
    ]
    assert lines_of(store, first) == [("CREDITED", D(10)), ("DEBITED", D(4)), ("DEBITED", D(6))]
    assert store.credits[first].status is CreditStatus.CONSUMED
    assert store.credits[second].amounts.consumed == D(2)
    assert account(store).totals == BalanceTotals(D(10), D(8), D(0), D(0))


def test_two_debits_eating_one_credit_in_one_group() -> None:
    store = ledger_with(request(10))
    [credit_id] = ids_in_order(store)
    one, two, three = run_group(
        store,
        ORG,
        [Apply(ACC, debit("a", 6)), Apply(ACC, debit("b", 6)), Apply(ACC, debit("c", 1))],
        NOW,
    )
    assert [x.applied for x in (one, two, three)] == [D(6), D(4), D(0)]
    assert store.credits[credit_id].status is CreditStatus.CONSUMED
    assert lines_of(store, credit_id) == [
        ("CREDITED", D(10)),
        ("DEBITED", D(6)),
        ("DEBITED", D(4)),
    ]


def test_a_debited_invoice_answers_itself_or_conflicts() -> None:
    store = ledger_with(request(10))
    run_group(store, ORG, [Apply(ACC, debit("inv", 3))], NOW)
    loaded = load_for(store, invoices=("inv",))
    seq = loaded.account_ids[(ORG, ACC)]
    again, changes = decisions.apply(loaded, ORG, ACC, debit("inv", 3), NOW)
    assert again is loaded.applications[(seq, "inv")] and not changes
    with pytest.raises(Conflict) as refused:
        decisions.apply(loaded, ORG, ACC, debit("inv", 4), NOW)
    assert refused.value.message == (
        "invoice 'inv' is already debited; a debited application cannot be changed"
    )
    with pytest.raises(Conflict):
        decisions.apply(loaded, ORG, ACC, application("inv", 3), NOW)


def test_a_held_invoice_applied_again_is_replaced() -> None:
    store = ledger_with(request(10, priority=1), request(10, priority=2))
    first, second = ids_in_order(store)
    run_group(store, ORG, [Apply(ACC, application("inv", 8))], NOW)
    [stored] = store.applications.values()
    later = NOW + timedelta(minutes=1)
    [outcome] = run_group(store, ORG, [Apply(ACC, application("inv", 12))], later)
    assert isinstance(outcome, ApplicationRecord)
    assert outcome.seq == stored.seq and outcome.created_at == NOW and outcome.updated_at == later
    assert [(a.credit_id, a.amount) for a in outcome.lines[0].allocations] == [
        (first, D(10)),
        (second, D(2)),
    ]
    assert store.credits[first].amounts.held == D(10)
    assert store.credits[second].amounts.held == D(2)
    assert account(store).totals.applicable_held == D(12)


def test_a_hold_replaced_after_a_void_gives_the_voided_share_back() -> None:
    store = ledger_with(request(50, priority=0), request(50, priority=1))
    first, second = ids_in_order(store)
    outcomes = run_group(
        store,
        ORG,
        [
            Apply(ACC, application("inv", 30)),
            Void(first),
            Apply(ACC, application("inv", 30)),
            Settle("capture", ACC, "inv"),
        ],
        NOW,
    )
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert lines_of(store, first) == [("CREDITED", D(50)), ("VOIDED", D(20)), ("VOIDED", D(30))]
    assert lines_of(store, second) == [("CREDITED", D(50)), ("DEBITED", D(30))]
    assert store.credits[first].status is CreditStatus.VOIDED
    assert store.credits[first].amounts.held == 0


@pytest.mark.parametrize("closing", ["void", "expire"])
def test_release_after_void_or_expiry_closes_what_was_held(closing: str) -> None:
    store = ledger_with(request(10, until=TODAY))
    [credit_id] = ids_in_order(store)
    run_group(store, ORG, [Apply(ACC, application("inv", 4))], NOW)
    when = NOW
    if closing == "void":
        run_group(store, ORG, [Void(credit_id)], NOW)
    else:
        when = NOW + timedelta(days=1)
    [released] = run_group(store, ORG, [Settle("release", ACC, "inv")], when)
    assert isinstance(released, ApplicationRecord)
    assert released.status is ApplicationStatus.RELEASED
    kind = "VOIDED" if closing == "void" else "EXPIRED"
    assert lines_of(store, credit_id) == [("CREDITED", D(10)), (kind, D(6)), (kind, D(4))]
    assert store.credits[credit_id].amounts.held == 0
    assert account(store).totals == BalanceTotals()


def test_capture_and_release_edges() -> None:
    store = ledger_with(request(10))
    writes = [Apply(ACC, application("held", 1)), Apply(ACC, debit("debited", 1))]
    run_group(store, ORG, list(writes), NOW)
    loaded = load_for(store, invoices=("held", "debited", "none"))
    seq = loaded.account_ids[(ORG, ACC)]
    with pytest.raises(NotFound) as missing:
        decisions.capture(loaded, ORG, ACC, "none", NOW)
    assert missing.value.message == "no credit application for invoice 'none' on account 'acc'"
    with pytest.raises(NotFound):
        decisions.release(loaded, ORG, "nope", "held", NOW)
    same, changes = decisions.capture(loaded, ORG, ACC, "debited", NOW)
    assert same is loaded.applications[(seq, "debited")] and not changes
    with pytest.raises(Conflict) as refused:
        decisions.release(loaded, ORG, ACC, "debited", NOW)
    assert refused.value.message == "invoice 'debited' is already debited; it cannot be released"
    released, changes = decisions.release(loaded, ORG, ACC, "held", NOW)
    loaded.apply(changes)
    again, unchanged = decisions.release(loaded, ORG, ACC, "held", NOW)
    assert again.status is ApplicationStatus.RELEASED and not unchanged
    with pytest.raises(Conflict) as refused:
        decisions.capture(loaded, ORG, ACC, "held", NOW)
    assert refused.value.message == ("invoice 'held' was released; apply it again to hold credits")
    assert released.seq == again.seq > 0


# -- void ------------------------------------------------------------------------------------


def test_void_of_a_credit_of_another_organization_or_none_is_not_found() -> None:
    store = ledger_with(request(10))
    [credit_id] = ids_in_order(store)
    loaded = load_for(store)
    for org, wanted in ((2, credit_id), (ORG, "cred.none")):
        with pytest.raises(NotFound) as missing:
            decisions.void(loaded, org, wanted, NOW)
        assert missing.value.message == f"credit '{wanted}' was not found"


def test_void_refusals_are_judged_on_the_book_day() -> None:
    store = ledger_with(request(10), request(5, until=TODAY, priority=2), request(3))
    consumed, expiring, voided = ids_in_order(store)
    run_group(store, ORG, [Apply(ACC, debit("inv", 10)), Void(voided)], NOW)
    tomorrow = NOW + timedelta(days=1)
    loaded = store.load(today=TODAY, credits={(ORG, c) for c in store.credits})
    store.load_active(loaded, loaded.credits[consumed].account_seq)
    for credit_id, why in (
        (consumed, "the credit is fully consumed; nothing is left to void"),
        (expiring, "the credit has expired; nothing is left to void"),
        (voided, "the credit is already voided"),
    ):
        with pytest.raises(BadRequest) as refused:
            decisions.void(loaded, ORG, credit_id, tomorrow)
        assert refused.value.message == f"credit '{credit_id}' cannot be voided: {why}"
    credit, _ = decisions.void(loaded, ORG, expiring, NOW)  # still its last day
    assert credit.status is CreditStatus.VOIDED


def test_a_void_after_a_hold_keeps_the_hold_and_a_credit_granted_in_the_group_voids() -> None:
    store = ledger_with(request(10))
    [credit_id] = ids_in_order(store)
    held, voided = run_group(store, ORG, [Apply(ACC, application("inv", 4)), Void(credit_id)], NOW)
    assert isinstance(held, ApplicationRecord) and isinstance(voided, CreditRecord)
    assert (voided.amounts.held, voided.amounts.voided) == (D(4), D(6))
    assert account(store).totals == BalanceTotals()
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    [fresh], changes = decisions.grant(loaded, ORG, [request(2)], NOW)
    loaded.apply(changes)
    gone, more = decisions.void(loaded, ORG, fresh.id, NOW)
    merged = Changes()
    merged.merge(changes)
    merged.merge(more)
    assert merged.new_credits == [gone] and not merged.credits
    assert gone.status is CreditStatus.VOIDED and fresh.status is CreditStatus.ACTIVE


# -- random histories against the reference model --------------------------------------------

Op = tuple[object, ...]
ACCOUNTS = ["acc", "acc-2"]
KEYS = [None, None, "k1", "k2", "k3"]
START = datetime(2026, 11, 20, 12, tzinfo=UTC)

# mostly the first account, so that captures and releases find what was applied
account_index = st.sampled_from([0, 0, 0, 1])
grant_request = st.tuples(
    account_index,
    amounts,
    st.integers(0, 3),  # priority
    days,  # effectiveFrom, in days from today
    st.one_of(st.none(), st.integers(-1, 10)),  # effectiveUntil, in days from effectiveFrom
    st.sampled_from(range(len(SCOPES))),
    st.sampled_from(KEYS),
)
apply_op = st.tuples(
    st.sampled_from(["HOLD", "DEBIT"]),
    account_index,
    st.sampled_from(INVOICES),
    line_items,
    st.one_of(st.none(), st.integers(-2, 3)),
)
settle_op = st.tuples(
    st.sampled_from(["capture", "release"]), account_index, st.sampled_from(INVOICES)
)
history_op = st.one_of(
    st.tuples(st.just("grant"), st.lists(grant_request, min_size=1, max_size=3)),
    st.tuples(st.just("grant"), st.lists(grant_request, min_size=1, max_size=1)),
    st.tuples(st.just("many_maximal"), account_index, st.integers(2, 12)),
    apply_op,
    apply_op,
    settle_op,
    settle_op,
    st.tuples(st.just("void"), st.integers(0, 30)),
    st.tuples(st.just("advance"), st.integers(1, 6 * 24), st.booleans()),
)


class DecisionHistory:
    """Two accounts of one organization, run through the decisions (groups of writes on an
    in-memory store) and through the reference model side by side."""

    def __init__(self, store: MemoryLedger) -> None:
        """`store` holds the accounts (ACCOUNTS, of organization ORG) new, as of START."""
        self.store = store
        self.now = START
        self.models = {account_id: Account(today=START.date()) for account_id in ACCOUNTS}
        self.owner: dict[str, str] = {}  # credit id -> account id
        self.keys: dict[str, tuple[tuple[object, ...], str]] = {}

    @property
    def today(self) -> date:
        return self.now.date()

    # -- building a group's writes ---------------------------------------------------------

    def grant_of(self, spec: tuple[object, ...]) -> GrantRequest:
        account, value, priority, start, until, scope, key = spec
        assert isinstance(start, int) and isinstance(value, Decimal)
        effective_from = self.today + timedelta(days=start)
        scope_ids = SCOPES[scope]
        return GrantRequest(
            account_id=ACCOUNTS[account],
            purpose="PROMOTIONAL",
            applicable_entity_ids=tuple(scope_ids) if scope_ids is not None else None,
            effective_from=effective_from,
            effective_until=None if until is None else effective_from + timedelta(days=until),
            credit_amount=value,
            priority=priority,
            grantor_id=None,
            idempotency_key=key,
        )

    def write_of(self, op: tuple[object, ...]) -> Write:
        kind = op[0]
        if kind == "grant":
            return Grant(tuple(self.grant_of(spec) for spec in op[1]))
        if kind == "many_maximal":
            one = (op[1], LARGEST, 1, 0, None, 0, None)
            return Grant(tuple(self.grant_of(one) for _ in range(op[2])))
        if kind in ("HOLD", "DEBIT"):
            _, account, invoice, items, as_of = op
            request = ApplicationRequest(
                invoice_id=invoice,
                mode=ApplicationMode(kind),
                as_of=None if as_of is None else self.today + timedelta(days=as_of),
                line_items=tuple(
                    LineItem(entity, EntityType(kind_), value) for (entity, kind_), value in items
                ),
            )
            return Apply(ACCOUNTS[account], request)
        if kind in ("capture", "release"):
            return Settle(kind, ACCOUNTS[op[1]], op[2])
        assert kind == "void"
        known = [c.id for c in sorted(self.store.credits.values(), key=lambda c: c.seq)]
        pick = op[1]
        assert isinstance(pick, int)
        if pick == 30 or not known:
            return Void("cred.00000000000.none0")
        return Void(known[pick % len(known)])

    # -- running a group and checking each answer -------------------------------------------

    def run(self, ops: list[Op]) -> None:
        self.run_writes([self.write_of(op) for op in ops])

    def run_writes(self, writes: list[Write]) -> list[object]:
        """One group through the decisions; each answer checked with the model."""
        for model in self.models.values():
            model.move_to(self.today)
        outcomes = run_group(self.store, ORG, writes, self.now)
        for write, outcome in zip(writes, outcomes, strict=True):
            self.expect(write, outcome)
        return outcomes

    def expect(self, write: Write, outcome: object) -> None:
        if isinstance(write, Grant):
            self.expect_grant(write, outcome)
        elif isinstance(write, Apply):
            request = write.request
            items = tuple(
                Item(i.entity_id, i.entity_type.value, units(i.amount)) for i in request.line_items
            )
            answer = self.models[write.account_id].apply(
                request.invoice_id, request.mode.value, request.as_of, items
            )
            self.same_answer(answer, outcome)
        elif isinstance(write, Settle):
            model = self.models[write.account_id]
            settle = model.capture if write.action == "capture" else model.release
            self.same_answer(settle(write.invoice_id), outcome)
        else:
            owner = self.owner.get(write.credit_id, ACCOUNTS[0])
            answer = self.models[owner].void(write.credit_id)
            self.same_status(answer.status, outcome)
            if answer.status == 200:
                assert isinstance(outcome, CreditRecord)
                self.same_credit(outcome, owner)

    def expect_grant(self, write: Grant, outcome: object) -> None:
        requests = write.requests
        keys = [r.idempotency_key for r in requests if r.idempotency_key is not None]
        if any(r.effective_until and r.effective_until < r.effective_from for r in requests):
            self.same_status(400, outcome)
            return
        if len(set(keys)) != len(keys):
            self.same_status(400, outcome)
            return
        replays: dict[int, str] = {}
        for index, r in enumerate(requests):
            if r.idempotency_key in self.keys:
                asked, credit_id = self.keys[r.idempotency_key]
                if asked != self.asked(r):
                    self.same_status(409, outcome)
                    return
                replays[index] = credit_id
        assert isinstance(outcome, list), outcome
        for index, (r, credit) in enumerate(zip(requests, outcome, strict=True)):
            if index in replays:
                assert credit.id == replays[index]
                continue
            self.owner[credit.id] = r.account_id
            self.models[r.account_id].grant(
                credit.id,
                units(r.credit_amount),
                r.priority,
                r.effective_from,
                r.effective_until,
                list(r.applicable_entity_ids) if r.applicable_entity_ids is not None else None,
                self.now,
            )
            if r.idempotency_key is not None:
                self.keys[r.idempotency_key] = (self.asked(r), credit.id)
            self.same_credit(credit, r.account_id)

    @staticmethod
    def asked(r: GrantRequest) -> tuple[object, ...]:
        """What makes two grants with one key the same ask (credits.md), from the fields."""
        return (
            r.account_id,
            r.purpose,
            sorted(r.applicable_entity_ids or []),
            r.effective_from,
            r.effective_until,
            units(r.credit_amount),
            r.priority,
            r.grantor_id,
        )

    @staticmethod
    def same_status(status: int, outcome: object) -> None:
        if status == 200:
            assert not isinstance(outcome, DrawdownError), outcome
        else:
            assert isinstance(outcome, DrawdownError), outcome
            assert outcome.status_code == status, outcome

    def same_answer(self, answer: Answer, outcome: object) -> None:
        self.same_status(answer.status, outcome)
        if answer.application is not None:
            assert isinstance(outcome, ApplicationRecord)
            same_application(outcome, answer.application)

    def same_credit(self, credit: CreditRecord, account_id: str) -> None:
        view = self.models[account_id].credit_view(credit.id)
        assert (
            credit.status.value,
            credit.amounts.credit_amount,
            credit.amounts.consumed,
            credit.amounts.held,
        ) == (view["status"], view["creditAmount"], view["consumedAmount"], view["holdAmount"])

    def advance(self, op: Op) -> None:
        _, hours, run_sweep = op
        assert isinstance(hours, int)
        self.now += timedelta(hours=hours)
        if run_sweep:
            for model in self.models.values():
                model.move_to(self.today)
            sweep_all(self.store, self.now)

    # -- the whole state -------------------------------------------------------------------

    def compare_everything(self) -> None:
        """The store, as a read would show it (brought up to today, not saved), equals the
        models: every credit's status, amounts and lines, every application, the balances."""
        loaded = self.store.load(
            today=self.today, accounts={(ORG, account_id) for account_id in ACCOUNTS}
        )
        credits = dict(self.store.credits)
        lines = {credit_id: list(found) for credit_id, found in self.store.lines.items()}
        for account_id in ACCOUNTS:
            model = self.models[account_id]
            model.move_to(self.today)
            model.check_invariants()
            seq = loaded.account_ids[(ORG, account_id)]
            if seq not in loaded.active:
                self.store.load_active(loaded, seq)
            brought = decisions.bring_to_today(loaded, seq, self.now)
            credits.update(brought.credits)
            for line in brought.lines:
                lines[line.credit_id].append(line)
            kept = brought.accounts.get(seq, loaded.accounts[seq])
            assert not decisions.needs_bringing(kept, self.now)
            totals = kept.totals
            assert model.balance_view() == {
                "activeCredits": totals.active_amount,
                "availableBalance": totals.available_balance,
                "runningBalance": totals.running_balance,
                "inapplicableCredits": totals.inapplicable_left,
            }
            mine = {c.id: c for c in credits.values() if c.account_seq == seq}
            assert set(mine) == set(model.credits)
            for credit_id, credit in mine.items():
                view = model.credit_view(credit_id)
                got = {
                    "status": credit.status.value,
                    "creditAmount": credit.amounts.credit_amount,
                    "consumedAmount": credit.amounts.consumed,
                    "holdAmount": credit.amounts.held,
                    "transactions": [
                        (x.transaction_type.value, x.amount, x.invoice_id, x.entity_id)
                        for x in lines[credit_id]
                    ],
                }
                assert got == view, credit_id
                expected = model.credits[credit_id]
                assert (credit.amounts.expired, credit.amounts.voided) == (
                    amount_of(expected.expired),
                    amount_of(expected.voided),
                )
            stored = {
                invoice: app
                for (account_seq, invoice), app in self.store.applications.items()
                if account_seq == seq
            }
            assert set(stored) == set(model.applications)
            for invoice, app in stored.items():
                same_application(app, model.applications[invoice])


def amount_of(count: int) -> Decimal:
    return reference_amount(count)


def same_application(record: ApplicationRecord, expected: ModelApplication) -> None:
    view = expected.view()
    assert record.invoice_id == view["invoiceId"]
    assert record.status.value == view["status"]
    assert record.as_of.isoformat() == view["asOf"]
    assert (record.applied, record.remaining) == (view["appliedAmount"], view["remainingAmount"])
    got = [
        {
            "amount": line.amount,
            "appliedAmount": line.applied,
            "remainingAmount": line.remaining,
            "allocations": [
                {"creditId": a.credit_id, "amount": a.amount} for a in line.allocations
            ],
        }
        for line in record.lines
    ]
    want = [
        {key: line[key] for key in ("amount", "appliedAmount", "remainingAmount", "allocations")}
        for line in view["lineItems"]
    ]
    assert got == want


def steps(ops: list[tuple[Op, bool]]) -> Iterator[tuple[str, list[Op]]]:
    """The history as the coalescer would see it: ("group", writes applied together) and
    ("advance", [clock move]). An op joins the group before it when it says so, except that
    a group's grants are not candidates for its applications: a grant then an application go
    to separate groups (they could have arrived in either order)."""
    group: list[Op] = []
    for op, joins in ops:
        if op[0] == "advance":
            if group:
                yield "group", group
                group = []
            yield "advance", [op]
            continue
        granted = any(g[0] in ("grant", "many_maximal") for g in group)
        if group and (not joins or (op[0] in ("HOLD", "DEBIT") and granted)):
            yield "group", group
            group = []
        group.append(op)
    if group:
        yield "group", group


def run_decision_history(ops: list[tuple[Op, bool]], first: int = 8, more: int = 8) -> None:
    store = MemoryLedger(first=first, more=more)
    for account_id in ACCOUNTS:
        store.add_account(ORG, account_id, as_of=START.date(), updated_at=START)
    history = DecisionHistory(store)
    for kind, group in steps(ops):
        if kind == "group":
            history.run(group)
        else:
            history.advance(group[0])
        history.compare_everything()


def sweep_all(store: MemoryLedger, now: datetime) -> None:
    """The expiry sweep: one group per account that needs it."""
    for seq in sorted(store.accounts):
        if decisions.needs_bringing(store.accounts[seq], now):
            loaded = store.load(today=now.date(), accounts={(ORG, store.accounts[seq].id)})
            changes = decisions.bring_to_today(loaded, seq, now)
            assert changes
            store.save(changes)


@settings(
    max_examples=settings().max_examples * 8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(history_op, st.booleans()), min_size=1, max_size=25),
    st.integers(1, 8),
    st.integers(1, 8),
)
def test_random_histories_through_the_decisions_match_the_reference_model(
    ops: list[tuple[tuple[object, ...], bool]], first: int, more: int
) -> None:
    run_decision_history(ops, first, more)


def test_many_maximal_credits_held_debited_voided_and_released_in_groups() -> None:
    items = [(ENTITIES[0], LARGEST), (ENTITIES[1], LARGEST), (ENTITIES[0], SMALLEST)]
    run_decision_history(
        [
            (("many_maximal", 0, 12), False),
            (("grant", [(0, SMALLEST, 0, 0, None, 0, "k1")]), True),
            (("HOLD", 0, "inv-a", items, None), False),
            (("DEBIT", 0, "inv-b", items, None), True),
            (("void", 3), True),
            (("release", 0, "inv-a"), True),
            (("grant", [(0, SMALLEST, 0, 0, None, 0, "k1")]), True),
            (("advance", 24, True), False),
        ],
        first=2,
        more=1,
    )


# -- the worked vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTOR_CASES, ids=[c["name"] for c in VECTOR_CASES])
def test_vector_through_the_decisions(case: dict[str, Any]) -> None:
    store = MemoryLedger(first=1, more=1)
    store.add_account(ORG, ACC)
    keys: dict[str, str] = {}
    for index, spec in enumerate(case["credits"]):
        until = spec["effectiveUntil"]
        grant = GrantRequest(
            account_id=ACC,
            purpose="PREPAID_CREDIT",
            applicable_entity_ids=tuple(spec["applicableEntityIds"]),
            effective_from=date.fromisoformat(spec.get("effectiveFrom") or "2026-01-01"),
            effective_until=date.fromisoformat(until) if until else None,
            credit_amount=D(spec["creditAmount"]),
            priority=spec["priority"],
            grantor_id=None,
            idempotency_key=None,
        )
        [granted] = run_group(store, ORG, [Grant((grant,))], vector_created_at(spec, index))
        assert isinstance(granted, list), granted
        keys[granted[0].id] = spec["key"]
    items = tuple(
        LineItem(i["entityId"], EntityType(i["entityType"]), D(i["amount"]))
        for i in case["lineItems"]
    )
    noon = datetime.combine(date.fromisoformat(case["asOf"]), datetime.min.time(), UTC)
    request = ApplicationRequest("inv-1", ApplicationMode.DEBIT, None, items)
    [applied] = run_group(store, ORG, [Apply(ACC, request)], noon.replace(hour=12))
    assert isinstance(applied, ApplicationRecord)
    got = [[(keys[a.credit_id], a.amount) for a in line.allocations] for line in applied.lines]
    assert got == vector_expected(case)
    assert applied.applied == D(case["expected"]["appliedAmount"])
    assert applied.remaining == D(case["expected"]["remainingAmount"])
    assert applied.status is ApplicationStatus.DEBITED
