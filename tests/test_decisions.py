"""The write decisions of ledger/ (grant, HOLD/DEBIT, capture, release, void, bring to today)
without a database: each edge on its own, then random histories through an in-memory store
(tests/memory_ledger.py, which plays the coalescer) compared at every step with the
independent reference model."""

import copy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from drawdown.errors import BadRequest, Conflict, NotFound
from drawdown.ledger import decisions
from drawdown.ledger.allocation import EntityType, LineItem
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.changes import Changes, Loaded, NeedCandidates
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.records import ApplicationRecord, CreditRecord
from drawdown.ledger.requests import ApplicationRequest, GrantRequest
from tests.memory_ledger import Apply, Grant, MemoryLedger, Settle, Void, run_group

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
TODAY = NOW.date()
ORG = 1
ACC = "acc"
D = Decimal
LARGEST = D("999999999999999999.9999999999")
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


def account(store: MemoryLedger, account_id: str = ACC) -> object:
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
def test_a_bad_batch_is_refused_with_todays_words(
    batch: list[GrantRequest], message: str
) -> None:
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
        [Grant((request(5, key="k"),)), Grant((request(5, key="k"),)), Grant((request(6, key="k"),))],
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
    [(key, stored)] = store.applications.items()
    assert stored.status is ApplicationStatus.DEBITED and stored.seq > 0
    assert [(a.credit_id, a.amount) for line in stored.lines for a in line.allocations] == [
        (first, D(4)),
        (first, D(6)),
        (second, D(2)),
    ]
    assert lines_of(store, first) == [("CREDITED", D(10)), ("DEBITED", D(4)), ("DEBITED", D(6))]
    assert store.credits[first].status is CreditStatus.CONSUMED
    assert store.credits[second].amounts.consumed == D(2)
    assert account(store).totals == BalanceTotals(D(10), D(8), D(0), D(0))  # type: ignore[attr-defined]


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
    assert account(store).totals.applicable_held == D(12)  # type: ignore[attr-defined]


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
    assert account(store).totals == BalanceTotals()  # type: ignore[attr-defined]


def test_capture_and_release_edges() -> None:
    store = ledger_with(request(10))
    run_group(store, ORG, [Apply(ACC, application("held", 1)), Apply(ACC, debit("debited", 1))], NOW)
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
    assert refused.value.message == (
        "invoice 'held' was released; apply it again to hold credits"
    )
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
    assert isinstance(voided, CreditRecord)
    assert (voided.amounts.held, voided.amounts.voided) == (D(4), D(6))
    assert account(store).totals == BalanceTotals()  # type: ignore[attr-defined]
    loaded = store.load(today=TODAY, accounts={(ORG, ACC)})
    [fresh], changes = decisions.grant(loaded, ORG, [request(2)], NOW)
    loaded.apply(changes)
    gone, more = decisions.void(loaded, ORG, fresh.id, NOW)
    merged = Changes()
    merged.merge(changes)
    merged.merge(more)
    assert merged.new_credits == [gone] and not merged.credits
    assert gone.status is CreditStatus.VOIDED and fresh.status is CreditStatus.ACTIVE
    assert held is not None
