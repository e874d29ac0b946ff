"""The usage rules of ledger/ without a database: pricing (exact, rounded half-even once, the
range), rates in effect, matching, event identity and refusals, and the burn-down decision on
the in-memory store (tests/memory_ledger.py), with Fraction arithmetic as the independent
check of every cost."""

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drawdown.ledger.burning import BurnOutcome, burn, burn_accounts
from drawdown.ledger.changes import Changes, NeedCandidates
from drawdown.ledger.credit import CreditStatus, TransactionType
from drawdown.ledger.events import (
    NewEvent,
    Refused,
    check_against_meters,
    check_window,
    parse_timestamp,
    parse_value,
)
from drawdown.ledger.usage import (
    Aggregation,
    CostOutOfRange,
    EventStatus,
    Meter,
    MeterStatus,
    Rate,
    matches,
    price,
)
from drawdown.ledger.usage_records import Charge, PendingEvent, UsageSums
from tests.memory_ledger import Grant, MemoryLedger, run_group
from tests.test_decisions import ACC, ORG, request

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
D = Decimal


def meter(
    meter_id: str = "um.tokens",
    *,
    seq: int = 1,
    aggregation: Aggregation = Aggregation.SUM,
    attribute: str | None = "tokens",
    schema: str = "llm_call",
    filters: tuple[tuple[str, str], ...] = (),
    rates: tuple[Rate, ...] = (Rate(D(2), D(1000)),),
    status: MeterStatus = MeterStatus.ACTIVE,
) -> Meter:
    return Meter(
        seq=seq,
        org_seq=ORG,
        id=meter_id,
        name=meter_id,
        event_schema_name=schema,
        aggregation=aggregation,
        attribute=attribute if aggregation is Aggregation.SUM else None,
        filters=filters,
        status=status,
        rates=rates,
        created_at=NOW,
        updated_at=NOW,
    )


def exact_cost(quantity: Decimal, rate: Rate) -> Fraction:
    return Fraction(quantity) * Fraction(rate.credits) / Fraction(rate.per_quantity)


def rounded_half_even(value: Fraction) -> Decimal:
    """Half-even to 10 decimals, on the exact fraction."""
    scaled = value * 10**10
    whole = scaled.numerator // scaled.denominator
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-10)


# -- pricing ---------------------------------------------------------------------------------


def test_an_exact_cost_is_kept_as_it_is() -> None:
    priced = price(D(1520), Rate(D("0.002"), D(1000)))
    assert priced.cost == D("0.00304") and priced.exact is None


def test_a_cost_needing_more_than_10_decimals_is_rounded_half_even_and_the_exact_kept() -> None:
    priced = price(D(1), Rate(D("0.00000000001"), D(1)))  # 1E-11 rounds to 0
    assert priced.cost == 0 and priced.exact == D("1E-11")
    tie_down = price(D(1), Rate(D("0.00000000025"), D(1)))  # 2.5E-10: half to even, 2E-10
    assert tie_down.cost == D("2E-10") and tie_down.exact == D("2.5E-10")
    tie_up = price(D(1), Rate(D("0.00000000035"), D(1)))
    assert tie_up.cost == D("4E-10")


def test_a_cost_that_does_not_terminate_is_rounded_and_cut_after_40_decimals() -> None:
    priced = price(D(1), Rate(D(1), D(3)))
    assert priced.cost == D("0.3333333333")
    assert priced.exact == D("0." + "3" * 40)
    two_thirds = price(D(2), Rate(D(1), D(3)))
    assert two_thirds.cost == D("0.6666666667")


@given(
    quantity=st.decimals(min_value=0, max_value=10**6, places=4),
    credits=st.decimals(min_value=0, max_value=10**4, places=6),
    per=st.decimals(min_value=D("0.001"), max_value=10**5, places=3),
)
def test_everyday_costs_agree_with_fraction_arithmetic(quantity: D, credits: D, per: D) -> None:
    check_cost(quantity, credits, per)


@given(
    quantity=st.decimals(min_value=0, max_value=10**9, places=10),
    credits=st.decimals(min_value=0, max_value=10**9, places=10),
    per=st.decimals(min_value=D("1E-10"), max_value=D("999999999999999999.9999999999"), places=10),
)
def test_costs_agree_with_fraction_arithmetic(quantity: D, credits: D, per: D) -> None:
    check_cost(quantity, credits, per)


def check_cost(quantity: D, credits: D, per: D) -> None:
    try:
        priced = price(quantity, Rate(credits, per))
    except CostOutOfRange:
        assert exact_cost(quantity, Rate(credits, per)) >= 10**18 - Fraction(1, 2 * 10**10)
        return
    rate = Rate(credits, per)
    exact = exact_cost(quantity, rate)
    assert priced.cost == rounded_half_even(exact)
    if Fraction(priced.cost) == exact:
        assert priced.exact is None
    else:
        assert priced.exact is not None
        assert Fraction(priced.exact) <= exact < Fraction(priced.exact) + Fraction(1, 10**40)


def test_a_cost_of_10_to_the_18_is_out_of_range() -> None:
    price(D("999999999999999999"), Rate(D(1), D(1)))
    with pytest.raises(CostOutOfRange):
        price(D("999999999999999999.9999999999"), Rate(D("1.0000000001"), D(1)))
    with pytest.raises(CostOutOfRange):
        price(D(10**17), Rate(D(10), D(1)))


def test_the_smallest_and_largest_values_price_exactly() -> None:
    largest = D("999999999999999999.9999999999")
    smallest = D("0.0000000001")
    for quantity, rate in (
        (smallest, Rate(smallest, largest)),
        (largest, Rate(smallest, largest)),
        (smallest, Rate(largest, largest)),
        (D(1), Rate(largest, smallest)),
    ):
        try:
            priced = price(quantity, rate)
        except CostOutOfRange:
            assert exact_cost(quantity, rate) >= 10**18
            continue
        exact = exact_cost(quantity, rate)
        assert priced.cost == rounded_half_even(exact)
        shown = Fraction(priced.exact if priced.exact is not None else priced.cost)
        assert shown <= exact < shown + Fraction(1, 10**40)


# -- rates and matching -------------------------------------------------------------------


def test_the_rate_in_effect_is_the_latest_one_started_at_or_before_the_timestamp() -> None:
    first = Rate(D(1), D(1))
    second = Rate(D(2), D(1), NOW)
    third = Rate(D(3), D(1), NOW + timedelta(days=1))
    m = meter(rates=(first, second, third))
    assert m.rate_at(NOW - timedelta(microseconds=1)) == first
    assert m.rate_at(NOW) == second
    assert m.rate_at(NOW + timedelta(days=2)) == third
    late_start = meter(rates=(Rate(D(1), D(1), NOW),))
    assert late_start.rate_at(NOW - timedelta(seconds=1)) is None


def test_matching_needs_the_schema_every_filter_and_the_summed_attribute() -> None:
    m = meter(filters=(("model", "large"), ("region", "eu")))
    tokens = {"tokens": D(5)}
    assert matches(m, "llm_call", tokens, {"model": "large", "region": "eu", "x": "y"})
    assert not matches(m, "llm_call", tokens, {"model": "large"})
    assert not matches(m, "llm_call", tokens, {"model": "Large", "region": "eu"})
    assert not matches(m, "other", tokens, {"model": "large", "region": "eu"})
    assert not matches(m, "llm_call", {"other": D(1)}, {"model": "large", "region": "eu"})
    count = meter(aggregation=Aggregation.COUNT)
    assert matches(count, "llm_call", {}, {})


# -- events ------------------------------------------------------------------------------------


def event(
    event_id: str = "e1",
    *,
    timestamp: datetime = NOW,
    attributes: dict[str, tuple[Decimal, str | None]] | None = None,
    dimensions: dict[str, str] | None = None,
) -> NewEvent:
    return NewEvent(
        id=event_id,
        schema_name="llm_call",
        account_id=ACC,
        timestamp=timestamp,
        attributes={"tokens": (D(10), "tokens")} if attributes is None else attributes,
        dimensions=dimensions or {},
    )


def test_content_identity_is_the_instant_the_exact_values_and_unordered_maps() -> None:
    base = event(attributes={"a": (D("1.5"), None), "b": (D(2), "u")}, dimensions={"x": "1"})
    same = event(
        timestamp=parse_timestamp("2026-11-24T13:00:00+01:00"),
        attributes={"b": (D("2.000"), "u"), "a": (D("1.50"), None)},
        dimensions={"x": "1"},
    )
    assert base.content_hash() == same.content_hash()
    for different in (
        replace(base, timestamp=NOW + timedelta(microseconds=1)),
        replace(base, attributes={"a": (D("1.5"), "kg"), "b": (D(2), "u")}),
        replace(base, attributes={"a": (D("1.51"), None), "b": (D(2), "u")}),
        replace(base, dimensions={"x": "2"}),
        replace(base, dimensions={}),
        replace(base, schema_name="other"),
        replace(base, account_id="acc-2"),
    ):
        assert different.content_hash() != base.content_hash()


# Stored with every event since issue 9: a resend after an upgrade is judged by these bytes, so
# they must never change (values computed by the first implementation).
PINNED_IDENTITIES = [
    (
        NewEvent(
            "e-1",
            "llm_call",
            "acc-1",
            datetime(2026, 11, 24, 12, tzinfo=UTC),
            {"tokens": (D("1520"), "tokens")},
            {"model": "large"},
        ),
        '{"attributes":[["tokens","1520","tokens"]],"dimensions":{"model":"large"}}',
        "95f527a0f03ebc4edf6573b0f4eb61af9d808b62f2db320ef7c9aa733da03d11",
    ),
    (
        NewEvent(
            "e-2",
            "llm_call",
            "acc-1",
            datetime(2026, 11, 24, 13, 0, 0, 1, tzinfo=timezone(timedelta(hours=1))),
            {"b": (D("2.000"), "u"), "a": (D("0.0000000001"), None)},
            {"z": 'ü"\n', "a": "1"},
        ),
        '{"attributes":[["a","0.0000000001",null],["b","2","u"]],'
        '"dimensions":{"a":"1","z":"ü\\"\\n"}}',
        "8572bfc214435f0ae83a4c2f29ffa179a8b41fbb83ee5ba7de11d42384418b6c",
    ),
    (
        NewEvent("e-3", "s", "a", datetime(2026, 1, 1, tzinfo=UTC), {}, {}),
        '{"attributes":[],"dimensions":{}}',
        "ea82f6d09ea029e7cbeda83fe20343d910c7408fcc04c61c2360354d00541820",
    ),
    (
        NewEvent(
            "e-4",
            "s",
            "a",
            datetime(2026, 1, 1, tzinfo=UTC),
            {"x": (D("999999999999999999.9999999999"), None), "y": (D("0"), "")},
            {},
        ),
        '{"attributes":[["x","999999999999999999.9999999999",null],["y","0",""]],"dimensions":{}}',
        "fe38b26a721c07c98e1f06dded1f73c78f5999f6cb501e2dbb1cdde71ce2e09a",
    ),
]


@pytest.mark.parametrize(("new", "content", "identity"), PINNED_IDENTITIES)
def test_an_events_stored_content_and_identity_never_change(
    new: NewEvent, content: str, identity: str
) -> None:
    assert new.content_json == content
    assert new.content_hash() == identity
    assert new.content_hash() == identity  # asked twice: the same answer


def test_attribute_values_are_plain_non_negative_decimals_within_an_amount() -> None:
    assert parse_value(3, "t", "0007.50") == D("7.5")
    assert parse_value(3, "t", "999999999999999999.9999999999") == D(
        "999999999999999999.9999999999"
    )
    for bad in ("-1", "1e3", ".5", "5.", "+1", " 1", "NaN", "1,5", "", "0x10"):
        with pytest.raises(Refused) as refused:
            parse_value(3, "t", bad)
        message = str(refused.value)
        assert message.startswith("attributes[3].value: the value of 't' must be a non-negative")
        assert message.endswith(f", not {bad!r}")
    with pytest.raises(Refused) as refused:
        parse_value(3, "t", "0.00000000001")
    assert str(refused.value) == (
        "attributes[3].value: the value of 't' must have at most 10 digits after the decimal "
        "point, not '0.00000000001'"
    )
    with pytest.raises(Refused, match="18 digits before"):
        parse_value(3, "t", "1" + "0" * 18)


def test_timestamps_are_iso_utc_unless_an_offset_says_otherwise() -> None:
    assert parse_timestamp("2026-11-24T12:00:00") == NOW
    assert parse_timestamp("2026-11-24T12:00:00Z") == NOW
    assert parse_timestamp("2026-11-24T14:00:00+02:00") == NOW
    assert parse_timestamp("2026-11-24T12:00:00.123456Z").microsecond == 123456
    for bad in ("2026-11-24T12:00:00.1234567Z", "yesterday", "2026-13-01T00:00:00Z", ""):
        with pytest.raises(Refused, match="timestamp"):
            parse_timestamp(bad)


def test_the_window_is_45_days_back_and_5_minutes_ahead() -> None:
    check_window(NOW - timedelta(days=45), NOW)
    check_window(NOW + timedelta(minutes=5), NOW)
    with pytest.raises(Refused, match="45 days"):
        check_window(NOW - timedelta(days=45, microseconds=1), NOW)
    with pytest.raises(Refused, match="5 minutes"):
        check_window(NOW + timedelta(minutes=5, microseconds=1), NOW)


def test_an_active_sum_meter_refuses_an_event_without_its_attribute() -> None:
    meters = [meter(filters=(("model", "large"),))]
    lacking = event(attributes={}, dimensions={"model": "large"})
    with pytest.raises(Refused, match=r"meter 'um\.tokens' sums attribute 'tokens'"):
        check_against_meters(lacking, meters)
    check_against_meters(replace(lacking, dimensions={"model": "small"}), meters)
    check_against_meters(lacking, [meter(status=MeterStatus.INACTIVE)])
    check_against_meters(lacking, [meter(schema="other")])


def test_an_event_whose_cost_no_amount_holds_is_refused() -> None:
    meters = [meter(rates=(Rate(D(10), D("0.0000000001")),))]
    with pytest.raises(Refused, match="10\\^18"):
        check_against_meters(event(attributes={"tokens": (D(10**9), None)}), meters)
    check_against_meters(event(attributes={"tokens": (D(1), None)}), meters)


# -- the burn-down decision ----------------------------------------------------------------


def pending(
    seq: int,
    tokens: Decimal | int | None,
    *,
    at: datetime = NOW,
    schema: str = "llm_call",
    dimensions: dict[str, str] | None = None,
    account_seq: int = 1,
) -> PendingEvent:
    return PendingEvent(
        seq=seq,
        account_seq=account_seq,
        id=f"e{seq:04d}",
        schema_name=schema,
        timestamp=at,
        attributes={} if tokens is None else {"tokens": D(tokens)},
        dimensions=dimensions or {},
    )


def ledger_with(*amounts: tuple[Decimal | int, dict[str, object]]) -> MemoryLedger:
    store = MemoryLedger()
    store.add_account(ORG, ACC)
    for amount, extra in amounts:
        [outcome] = run_group(store, ORG, [Grant((request(amount, **extra),))], NOW)  # type: ignore[arg-type]
        assert isinstance(outcome, list)
    return store


def run_burn(
    store: MemoryLedger, events: list[PendingEvent], meters: list[Meter], now: datetime = NOW
) -> Changes:
    """Load as a store would, decide (loading more candidates when asked), save."""
    seq = next(iter(store.accounts))
    loaded = store.load(
        today=now.date(), accounts={(ORG, ACC)}, candidates={(ORG, ACC, now.date())}
    )
    loaded.pending[seq] = sorted(events, key=lambda e: e.order)
    loaded.meters[ORG] = meters
    for _ in range(100):
        before = copy.deepcopy(loaded)
        try:
            outcome, changes = burn(loaded, seq, now)
        except NeedCandidates as need:
            assert loaded == before
            store.load_candidates(loaded, need.account_seq, need.as_of, store.more)
            continue
        assert loaded == before, "the decision changed what it was given"
        assert outcome.applied == len(events)
        store.save(changes)
        return changes
    raise AssertionError("kept asking for candidates")


def charges_of(changes: Changes) -> dict[int, tuple[Charge, ...]]:
    return {e.seq: e.charges for e in changes.events}


def test_events_draw_in_drawdown_order_and_what_is_left_is_uncovered() -> None:
    store = ledger_with((D(3), {"priority": 2}), (D(2), {"priority": 1}))
    first, second = sorted(store.credits.values(), key=lambda c: c.seq)
    changes = run_burn(store, [pending(1, 1000), pending(2, 2000), pending(3, 500)], [meter()])
    # cost 2 per 1000 tokens: 2, 4, 1; credits: 2 (priority 1) then 3 (priority 2)
    got = charges_of(changes)
    assert [(a.credit_id, a.amount) for a in got[1][0].allocations] == [(second.id, D(2))]
    assert [(a.credit_id, a.amount) for a in got[2][0].allocations] == [(first.id, D(3))]
    assert got[2][0].uncovered == 1
    assert got[3][0].allocations == () and got[3][0].uncovered == 1
    assert store.credits[first.id].status is CreditStatus.CONSUMED
    assert store.credits[second.id].amounts.consumed == 2
    debits = [
        (line.credit_id, line.amount, line.entity_id, line.invoice_id)
        for line in changes.lines
        if line.transaction_type is TransactionType.DEBITED
    ]
    assert debits == [(second.id, D(2), "um.tokens", None), (first.id, D(3), "um.tokens", None)]
    assert changes.usage_sums == {
        (1, 1): UsageSums(D(3500), D(7), D(5), D(0), D(2), 3),
    }
    account = store.accounts[1]
    assert account.totals.available_balance == 0


def test_one_line_per_meter_and_credit_carries_many_events() -> None:
    store = ledger_with((D(100), {}))
    meters = [
        meter(),
        meter("um.calls", seq=2, aggregation=Aggregation.COUNT, rates=(Rate(D("0.5"), D(1)),)),
    ]
    changes = run_burn(store, [pending(n, 1000) for n in range(1, 6)], meters)
    debits = [line for line in changes.lines if line.transaction_type is TransactionType.DEBITED]
    assert sorted((line.entity_id, line.amount) for line in debits) == [
        ("um.calls", D("2.5")),
        ("um.tokens", D(10)),
    ]
    line_ids = {line.entity_id: line.id for line in debits}
    for charges in charges_of(changes).values():
        assert [c.meter_id for c in charges] == ["um.calls", "um.tokens"]
        for charge in charges:
            assert [a.line_id for a in charge.allocations] == [line_ids[charge.meter_id]]
    assert store.credits[next(iter(store.credits))].amounts.consumed == D("12.5")


def test_scopes_choose_the_credits_a_meter_may_draw_on() -> None:
    store = ledger_with(
        (D(5), {"priority": 0, "scope": ("um.other",)}),
        (D(5), {"priority": 1, "scope": ("ALL_FIXED_FEE_RATE_CARDS",)}),
        (D(5), {"priority": 2, "scope": ("ALL_USAGE_METER_RATE_CARDS",)}),
        (D(5), {"priority": 3, "scope": ("um.tokens",)}),
        (D(5), {"priority": 4}),
    )
    ids = [c.id for c in sorted(store.credits.values(), key=lambda c: c.seq)]
    changes = run_burn(store, [pending(1, 7000)], [meter()])  # cost 14
    [[charge]] = charges_of(changes).values()
    assert [(a.credit_id, a.amount) for a in charge.allocations] == [
        (ids[2], D(5)),
        (ids[3], D(5)),
        (ids[4], D(4)),
    ]
    assert charge.uncovered == 0


def test_credits_pay_only_events_of_days_they_are_in_effect() -> None:
    yesterday = NOW - timedelta(days=1)
    store = ledger_with((D(10), {"start": NOW.date()}), (D(10), {"until": yesterday.date()}))
    today_only, until_yesterday = sorted(store.credits.values(), key=lambda c: c.seq)
    changes = run_burn(store, [pending(1, 1000, at=yesterday), pending(2, 1000)], [meter()])
    got = charges_of(changes)
    # the credit that ended yesterday is expired by now: it pays nothing, even for yesterday
    assert got[1][0].allocations == () and got[1][0].uncovered == 2
    assert [(a.credit_id, a.amount) for a in got[2][0].allocations] == [(today_only.id, D(2))]
    assert store.credits[until_yesterday.id].amounts.consumed == 0


def test_many_small_credits_are_loaded_as_the_batch_needs_them() -> None:
    store = ledger_with(*[(D(1), {"priority": n}) for n in range(30)])
    changes = run_burn(store, [pending(n, 2500) for n in range(1, 11)], [meter()])  # 5 each
    got = charges_of(changes)
    paid = [a.amount for charges in got.values() for a in charges[0].allocations]
    assert paid == [D(1)] * 30
    assert [charges[0].uncovered for charges in got.values()] == [0] * 6 + [D(5)] * 4


def test_unmetered_inactive_and_unpriced_events() -> None:
    store = ledger_with((D(100), {}))
    meters = [
        meter(),
        meter("um.off", seq=2, aggregation=Aggregation.COUNT, status=MeterStatus.INACTIVE),
        meter(
            "um.later",
            seq=3,
            aggregation=Aggregation.COUNT,
            rates=(Rate(D(1), D(1), NOW + timedelta(hours=1)),),
        ),
    ]
    events = [pending(1, None), pending(2, 5, schema="other"), pending(3, 1000)]
    changes = run_burn(store, events, meters)
    statuses = {e.seq: (e.status, [c.meter_id for c in e.charges]) for e in changes.events}
    assert statuses == {
        1: (EventStatus.UNMETERED, []),  # the SUM meter's attribute is missing
        2: (EventStatus.UNMETERED, []),
        3: (EventStatus.APPLIED, ["um.tokens"]),
    }
    assert changes.applied_through == {1: NOW}


def test_events_apply_in_timestamp_then_id_order() -> None:
    store = ledger_with((D(3), {}))
    early = pending(9, 1000, at=NOW - timedelta(hours=1))
    tie_a, tie_b = pending(2, 1000), pending(3, 1000)
    changes = run_burn(store, [tie_b, early, tie_a], [meter()])
    assert [e.seq for e in changes.events] == [9, 2, 3]
    assert [e.charges[0].uncovered for e in changes.events] == [0, D(1), D(2)]


def test_a_decision_leaves_nothing_when_nothing_is_pending() -> None:
    store = ledger_with((D(3), {}))
    loaded = store.load(
        today=NOW.date(), accounts={(ORG, ACC)}, candidates={(ORG, ACC, NOW.date())}
    )
    outcome, changes = burn(loaded, 1, NOW)
    assert outcome.applied == 0 and not changes


def test_applied_events_leave_the_loaded_pending_list() -> None:
    store = ledger_with((D(3), {}))
    loaded = store.load(
        today=NOW.date(), accounts={(ORG, ACC)}, candidates={(ORG, ACC, NOW.date())}
    )
    loaded.pending[1] = [pending(1, 1000)]
    loaded.meters[ORG] = [meter()]
    _, changes = burn(loaded, 1, NOW)
    loaded.apply(changes)
    again, nothing = burn(loaded, 1, NOW)
    assert again.applied == 0 and not nothing.events


def test_a_loaded_account_is_untouched_by_a_burn_with_no_cost() -> None:
    store = ledger_with((D(3), {}))
    changes = run_burn(store, [pending(1, 0)], [meter()])
    [[charge]] = charges_of(changes).values()
    assert (charge.cost, charge.allocations, charge.uncovered) == (0, (), 0)
    assert not changes.lines and not changes.credits
    assert changes.usage_sums[(1, 1)].events == 1


def test_sums_merge_across_decisions_of_a_group() -> None:
    first = Changes(usage_sums={(1, 1): UsageSums(D(1), D(2), D(2), D(0), D(0), 1)})
    second = Changes(
        usage_sums={(1, 1): UsageSums(D(1), D(3), D(1), D(0), D(2), 1)},
        applied_through={1: NOW},
    )
    first.merge(second)
    assert first.usage_sums[(1, 1)] == UsageSums(D(2), D(5), D(3), D(0), D(2), 2)
    assert first.applied_through == {1: NOW}


def test_one_decision_burns_several_accounts_and_leaves_out_unknown_ones() -> None:
    store = MemoryLedger()
    store.add_account(ORG, "acc-a")
    store.add_account(ORG, "acc-b")
    for account in ("acc-a", "acc-b"):
        [granted] = run_group(store, ORG, [Grant((request(3, account=account),))], NOW)
        assert isinstance(granted, list)
    names = [(ORG, "acc-a"), (ORG, "acc-b"), (ORG, "nobody")]
    loaded = store.load(
        today=NOW.date(), accounts=set(names), candidates={(*n, NOW.date()) for n in names}
    )
    loaded.pending[1] = [pending(1, 1000, account_seq=1)]
    loaded.pending[2] = [pending(2, 2000, account_seq=2), pending(3, 1000, account_seq=2)]
    loaded.pending_more[2] = True
    loaded.meters[ORG] = [meter()]
    before = copy.deepcopy(loaded)
    outcomes, changes = burn_accounts(loaded, names, NOW)
    assert loaded == before
    assert outcomes == {
        (ORG, "acc-a"): BurnOutcome(1, False),
        (ORG, "acc-b"): BurnOutcome(2, True),
    }
    assert sorted(e.seq for e in changes.events) == [1, 2, 3]
    assert changes.usage_sums == {
        (1, 1): UsageSums(D(1000), D(2), D(2), D(0), D(0), 1),
        (2, 1): UsageSums(D(3000), D(6), D(3), D(0), D(3), 2),
    }
    assert {seq: account.totals.available_balance for seq, account in changes.accounts.items()} == {
        1: D(1),
        2: D(0),
    }
