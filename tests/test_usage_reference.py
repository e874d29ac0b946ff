"""The usage reference model itself, on cases worked out by hand from usage.md and credits.md.

Each expected figure below was computed on paper, not by running the model, so that the
property tests compare the service with a model that is known to say what the rules say."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.reference_model import units
from tests.usage_reference import (
    ACCEPTED,
    APPLIED,
    BAD_VALUE,
    CONFLICT,
    COUNT,
    DUPLICATE,
    MISSING_ATTRIBUTE,
    NO_ID,
    SUM,
    TOO_COSTLY,
    TOO_NEW,
    TOO_OLD,
    UNKNOWN_ACCOUNT,
    UNMETERED,
    Event,
    Meter,
    Organization,
    Rate,
    attribute_value,
    finite_decimal,
    price,
)

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
LARGEST = Decimal("999999999999999999.9999999999")
SMALLEST = Decimal("0.0000000001")
D = Decimal


def org_with_account(account_id: str = "acc") -> Organization:
    org = Organization(today=NOW.date())
    org.add_account(account_id)
    return org


def count_meter(meter_id: str, credits: str, per: str = "1", schema: str = "call") -> Meter:
    return Meter(meter_id, meter_id, schema, COUNT, None, (), [Rate(D(credits), D(per))])


def sum_meter(
    meter_id: str, credits: str, per: str, attribute: str = "tokens", schema: str = "call"
) -> Meter:
    return Meter(meter_id, meter_id, schema, SUM, attribute, (), [Rate(D(credits), D(per))])


def grant(
    org: Organization,
    credit_id: str,
    value: str | Decimal,
    priority: int = 1,
    scope: list[str] | None = None,
    effective_from: date = date(2026, 11, 1),
    effective_until: date | None = None,
    account_id: str = "acc",
) -> None:
    created = NOW - timedelta(hours=1) + timedelta(seconds=len(org.accounts[account_id].credits))
    org.grant(
        account_id,
        credit_id,
        units(value),
        priority,
        effective_from,
        effective_until,
        scope,
        created,
    )


def event(
    event_id: str | None,
    at: datetime = NOW - timedelta(hours=1),
    tokens: str | None = None,
    schema: str = "call",
    account_id: str = "acc",
    dimensions: dict[str, str] | None = None,
) -> Event:
    attributes = () if tokens is None else (("tokens", D(tokens), "tokens"),)
    return Event(
        event_id, schema, account_id, at, attributes, tuple(sorted((dimensions or {}).items()))
    )


def ingest_all(org: Organization, *events: Event) -> None:
    for one in events:
        assert org.ingest(one, NOW).kind == ACCEPTED, one
    org.apply_pending()
    org.check_invariants()


def allocations(org: Organization, event_id: str) -> list[tuple[str, list[tuple[str, Decimal]]]]:
    view = org.event_view(event_id)
    return [
        (m["meterId"], [(a["creditId"], a["amount"]) for a in m["allocations"]])
        for m in view["meters"]  # type: ignore[attr-defined]
    ]


# Pricing -------------------------------------------------------------------------------------


def test_the_usage_md_example_prices_exactly() -> None:
    """1520 tokens at 0.002 credits per 1000 tokens: 1520 x 0.002 / 1000 = 0.00304."""
    cost = price(D(1520), Rate(D("0.002"), D(1000)))
    assert cost.cost_units == units("0.00304")
    assert not cost.rounded
    assert cost.exact_decimal == D("0.00304")


def test_a_cost_that_never_ends_is_rounded_to_ten_decimals() -> None:
    """exactCost is then cut after its 40th decimal."""
    third = price(D(1), Rate(D(1), D(3)))
    assert third.cost_units == units("0.3333333333")
    assert third.rounded and third.exact == Fraction(1, 3) and third.exact_decimal is None
    assert third.exact_shown == D("0." + "3" * 40)
    assert price(D(2), Rate(D(1), D(3))).exact_shown == D("0." + "6" * 40)
    assert price(D(1), Rate(D(1), D(2**45))).exact_shown == D(
        "0.0000000000000284217094304040074348449707"
    )
    two_thirds = price(D(1), Rate(D(2), D(3)))
    assert two_thirds.cost_units == units("0.6666666667")


@pytest.mark.parametrize(
    ("quantity", "cost"),
    [
        ("5", "0"),  # 0.00000000005: a tie, to the even 0
        ("15", "0.0000000002"),  # 1.5e-10: a tie, up to the even 2
        ("25", "0.0000000002"),  # 2.5e-10: a tie, down to the even 2
        ("35", "0.0000000004"),  # 3.5e-10: up to 4
        ("26", "0.0000000003"),  # 2.6e-10: not a tie, nearest
        ("24", "0.0000000002"),
    ],
)
def test_the_rounding_edge_is_half_even(quantity: str, cost: str) -> None:
    """1 credit per 10^11: each unit of quantity costs 10^-11, one place past the money's."""
    priced = price(D(quantity), Rate(D(1), D(10**11)))
    assert priced.cost_units == units(cost)
    assert priced.rounded
    assert priced.exact_decimal == priced.exact_shown == D(quantity) / D(10**11)


def test_a_rate_below_the_smallest_amount_can_cost_nothing() -> None:
    org = org_with_account()
    org.add_meter(sum_meter("um.tiny", "0.0000000001", "1"))
    grant(org, "c1", 10)
    ingest_all(org, event("e1", tokens="0.5"))
    view = org.event_view("e1")
    assert view["status"] == APPLIED
    [charge] = view["meters"]  # type: ignore[misc]
    assert charge["cost"] == 0 and charge["allocations"] == [] and charge["uncovered"] == 0
    assert org.usage_view("acc")["meters"] == [
        {
            "meterId": "um.tiny",
            "quantity": D("0.5"),
            "cost": 0,
            "paidByCredits": 0,
            "paidByWallet": 0,
            "uncovered": 0,
            "events": 1,
        }
    ]


def test_finite_decimal_knows_which_fractions_end() -> None:
    assert finite_decimal(Fraction(1, 8)) == D("0.125")
    assert finite_decimal(Fraction(3, 40)) == D("0.075")
    assert finite_decimal(Fraction(1, 6)) is None
    assert finite_decimal(Fraction(7)) == 7


# Drawing down --------------------------------------------------------------------------------


def test_scoped_credits_pay_in_drawdown_order_and_the_rest_is_uncovered() -> None:
    """Meters um.a and um.b cost 10 an event. F (priority 0) is for fixed fees only; A
    (priority 1, 15) pays um.a only; W (priority 2, 12) pays any usage meter; E (priority 3,
    8) pays anything. e1(a): A 10. e2(b): W 10. e3(a): A 5, W 2, E 3. e4(b): E 5, 5 uncovered."""
    org = org_with_account()
    org.add_meter(count_meter("um.a", "10", schema="a"))
    org.add_meter(count_meter("um.b", "10", schema="b"))
    grant(org, "F", 100, priority=0, scope=["ALL_FIXED_FEE_RATE_CARDS"])
    grant(org, "A", 15, priority=1, scope=["um.a"])
    grant(org, "W", 12, priority=2, scope=["ALL_USAGE_METER_RATE_CARDS"])
    grant(org, "E", 8, priority=3, scope=None)
    start = NOW - timedelta(hours=4)
    ingest_all(
        org,
        event("e1", start, schema="a"),
        event("e2", start + timedelta(minutes=1), schema="b"),
        event("e3", start + timedelta(minutes=2), schema="a"),
        event("e4", start + timedelta(minutes=3), schema="b"),
    )
    assert allocations(org, "e1") == [("um.a", [("A", 10)])]
    assert allocations(org, "e2") == [("um.b", [("W", 10)])]
    assert allocations(org, "e3") == [("um.a", [("A", 5), ("W", 2), ("E", 3)])]
    assert allocations(org, "e4") == [("um.b", [("E", 5)])]
    assert org.event_view("e4")["meters"][0]["uncovered"] == 5  # type: ignore[index]
    assert org.usage_view("acc")["meters"] == [
        {
            "meterId": "um.a",
            "quantity": 2,
            "cost": 20,
            "paidByCredits": 20,
            "paidByWallet": 0,
            "uncovered": 0,
            "events": 2,
        },
        {
            "meterId": "um.b",
            "quantity": 2,
            "cost": 20,
            "paidByCredits": 15,
            "paidByWallet": 0,
            "uncovered": 5,
            "events": 2,
        },
    ]
    account = org.accounts["acc"]
    assert [account.credits[c].status for c in "FAWE"] == ["ACTIVE", *["CONSUMED"] * 3]
    assert account.balance_view()["availableBalance"] == 100
    assert org.debited_by_meter("W") == {"um.a": 2, "um.b": 10}
    assert org.debited_by_meter("E") == {"um.a": 3, "um.b": 5}


def test_the_largest_amounts_are_exact() -> None:
    """A credit of 999999999999999999.9999999999 pays an event of exactly that cost and is
    consumed; the next event's 0.0000000001 is uncovered; the meter's totals pass 18 digits."""
    org = org_with_account()
    org.add_meter(sum_meter("um.big", "1", "1"))
    grant(org, "big", LARGEST)
    grant(org, "big2", LARGEST, priority=2)
    start = NOW - timedelta(hours=2)
    ingest_all(
        org,
        event("e1", start, tokens=str(LARGEST)),
        event("e2", start + timedelta(seconds=1), tokens=str(LARGEST)),
        event("e3", start + timedelta(seconds=2), tokens=str(SMALLEST)),
    )
    assert allocations(org, "e1") == [("um.big", [("big", LARGEST)])]
    assert allocations(org, "e2") == [("um.big", [("big2", LARGEST)])]
    assert allocations(org, "e3") == [("um.big", [])]
    [totals] = org.usage_view("acc")["meters"]  # type: ignore[misc]
    assert totals["quantity"] == D("1999999999999999999.9999999999")
    assert totals["cost"] == D("1999999999999999999.9999999999")
    assert totals["paidByCredits"] == D("1999999999999999999.9999999998")
    assert totals["uncovered"] == SMALLEST
    assert {c.status for c in org.accounts["acc"].credits.values()} == {"CONSUMED"}


def test_a_cost_of_ten_to_the_eighteen_is_refused_at_ingest_and_unmatched_at_apply() -> None:
    """999999999.9999999999 x 1000000000.0000000001 = 10^18 - 10^-20, which rounds to 10^18:
    not an amount. 999999999.9999999999 x 1000000000 = 10^18 - 10^-1 is one. An event accepted
    before a meter that would price it at 10^18 existed is not matched by that meter."""
    org = org_with_account()
    org.add_meter(sum_meter("um.edge", "1000000000.0000000001", "1"))
    org.add_meter(sum_meter("um.fits", "1000000000", "1", attribute="seconds"))
    grant(org, "c", LARGEST)
    over = Event(
        "over",
        "call",
        "acc",
        NOW - timedelta(hours=1),
        (("tokens", D("999999999.9999999999"), None), ("seconds", D(0), None)),
    )
    outcome = org.ingest(over, NOW)
    assert (outcome.kind, outcome.meter_id, outcome.status) == (TOO_COSTLY, "um.edge", 400)
    under = Event(
        "under",
        "call",
        "acc",
        NOW - timedelta(hours=1),
        (("seconds", D("999999999.9999999999"), None), ("tokens", D(0), None)),
    )
    ingest_all(org, under)
    assert allocations(org, "under") == [
        ("um.edge", []),
        ("um.fits", [("c", D("999999999999999999.9"))]),
    ]
    late = Event("late", "other", "acc", NOW - timedelta(hours=1), (("tokens", D(10**17), None),))
    assert org.ingest(late, NOW).kind == ACCEPTED
    org.add_meter(sum_meter("um.late", "10", "1", schema="other"))
    org.add_meter(sum_meter("um.late2", "1", "1", schema="other"))
    org.apply_pending()
    # what is left of c after 999999999999999999.9: 0.0999999999; the rest is uncovered
    assert allocations(org, "late") == [("um.late2", [("c", D("0.0999999999"))])]
    late_view = org.event_view("late")["meters"][0]  # type: ignore[index]
    assert late_view["uncovered"] == D("99999999999999999.9000000001")


def test_huge_quantities_at_tiny_rates_are_exact() -> None:
    """10^30 units at 1 credit per 10^20 cost 10^10 exactly."""
    assert price(D(10**30), Rate(D(1), D(10**20))).cost_units == units(10**10)


def test_one_event_on_two_meters_draws_each_in_meter_order() -> None:
    """um.a (2 per call) and um.b (3 per call) both match; the credit of 4 pays um.a's 2,
    then 2 of um.b's 3, and 1 is uncovered."""
    org = org_with_account()
    org.add_meter(count_meter("um.b", "3"))
    org.add_meter(count_meter("um.a", "2"))
    grant(org, "c", 4)
    ingest_all(org, event("e1"))
    assert allocations(org, "e1") == [("um.a", [("c", 2)]), ("um.b", [("c", 2)])]
    assert [m["uncovered"] for m in org.event_view("e1")["meters"]] == [0, 1]  # type: ignore[attr-defined]


# Order and time ------------------------------------------------------------------------------


def test_events_apply_in_timestamp_then_id_order_and_late_ones_when_they_arrive() -> None:
    """Credit 15, 10 per event. Arriving as b(t1), a(t1), c(t0): applied c, a, b, so c is
    paid, a half, b not at all. z (t0 - 1 h) arrives after they were applied and after a new
    grant of 100: applied then, from the new credit, without re-pricing the others."""
    org = org_with_account()
    org.add_meter(count_meter("um.x", "10"))
    grant(org, "old", 15, priority=0)
    t0 = NOW - timedelta(hours=3)
    t1 = t0 + timedelta(minutes=5)
    ingest_all(org, event("b", t1), event("a", t1), event("c", t0))
    assert org.applied["acc"] == ["c", "a", "b"]
    assert allocations(org, "c") == [("um.x", [("old", 10)])]
    assert allocations(org, "a") == [("um.x", [("old", 5)])]
    assert allocations(org, "b") == [("um.x", [])]
    grant(org, "new", 100, priority=5)
    ingest_all(org, event("z", t0 - timedelta(hours=1)))
    assert org.applied["acc"] == ["c", "a", "b", "z"]
    assert allocations(org, "z") == [("um.x", [("new", 10)])]
    assert allocations(org, "b") == [("um.x", [])]
    assert org.events_newest_first("acc") == ["b", "a", "c", "z"]


def test_an_event_is_priced_at_the_rate_in_effect_at_its_timestamp() -> None:
    org = org_with_account()
    org.add_meter(count_meter("um.x", "1"))
    change = NOW - timedelta(hours=2)
    org.change_rate("um.x", Rate(D(2), D(1), change))
    org.change_rate("um.x", Rate(D("0.5"), D(4), change + timedelta(minutes=30)))
    ingest_all(
        org,
        event("before", change - timedelta(microseconds=1)),
        event("at", change),
        event("later", change + timedelta(hours=1)),
    )
    costs = {i: org.event_view(i)["meters"][0]["cost"] for i in ("before", "at", "later")}  # type: ignore[index]
    assert costs == {"before": 1, "at": 2, "later": D("0.125")}
    view = org.meters["um.x"].view()
    assert view["creditRate"] == {"credits": D("0.5"), "perQuantity": 4}
    assert [r["effectiveFrom"] for r in view["rates"]] == [  # type: ignore[attr-defined]
        None,
        change,
        change + timedelta(minutes=30),
    ]


def test_credits_pay_only_events_on_days_they_are_in_effect_in_utc() -> None:
    """Today is 2026-11-24. "window" runs from 2026-11-20 through today: an event at
    2026-11-20T00:00:00+01:00 is on the 19th in UTC, so it does not pay it; one at 00:00Z on
    the 20th and one today it does. "gone" (priority 0) ran through the 23rd, so it expired
    when granted: it pays nothing, not even an event on the 22nd inside its dates."""
    org = org_with_account()
    org.add_meter(count_meter("um.x", "1"))
    grant(org, "window", 100, effective_from=date(2026, 11, 20), effective_until=date(2026, 11, 24))
    grant(org, "gone", 100, priority=0, effective_until=date(2026, 11, 23))
    early = datetime.fromisoformat("2026-11-20T00:00:00+01:00")
    ingest_all(
        org,
        event("early", early),
        event("first", datetime(2026, 11, 20, tzinfo=UTC)),
        event("inside", datetime(2026, 11, 22, 12, tzinfo=UTC)),
        event("today", NOW - timedelta(minutes=1)),
    )
    assert org.accounts["acc"].credits["gone"].status == "EXPIRED"
    assert allocations(org, "early") == [("um.x", [])]
    assert allocations(org, "first") == [("um.x", [("window", 1)])]
    assert allocations(org, "inside") == [("um.x", [("window", 1)])]
    assert allocations(org, "today") == [("um.x", [("window", 1)])]


def test_usage_view_narrows_by_timestamp_from_inclusive_to_exclusive() -> None:
    org = org_with_account()
    org.add_meter(count_meter("um.x", "1"))
    t = NOW - timedelta(hours=5)
    ingest_all(org, event("a", t), event("b", t + timedelta(hours=1)))
    narrowed = org.usage_view("acc", t, t + timedelta(hours=1))
    assert [(m["meterId"], m["events"]) for m in narrowed["meters"]] == [("um.x", 1)]  # type: ignore[attr-defined]
    assert org.usage_view("acc", t + timedelta(hours=2))["meters"] == []


# Meters that match or not --------------------------------------------------------------------


def test_filters_inactive_meters_and_unmetered_events() -> None:
    org = org_with_account()
    large = Meter(
        "um.large",
        "large",
        "call",
        COUNT,
        None,
        (("dimensions.model", "large"),),
        [Rate(D(5), D(1))],
    )
    org.add_meter(large)
    org.add_meter(count_meter("um.off", "7"))
    org.set_active("um.off", False)
    grant(org, "c", 100)
    ingest_all(
        org,
        event("big", dimensions={"model": "large"}),
        event("small", dimensions={"model": "small"}),
        event("none"),
    )
    assert org.event_view("big")["status"] == APPLIED
    assert allocations(org, "big") == [("um.large", [("c", 5)])]
    for unmatched in ("small", "none"):
        assert org.event_view(unmatched)["status"] == UNMETERED
        assert org.event_view(unmatched)["meters"] == []
    org.set_active("um.off", True)
    ingest_all(org, event("later"))
    assert allocations(org, "later") == [("um.off", [("c", 7)])]


def test_a_sum_meter_does_not_match_an_event_without_its_attribute() -> None:
    """The event was accepted before the meter existed; applied after, it is unmetered."""
    org = org_with_account()
    assert org.ingest(event("e1"), NOW).kind == ACCEPTED
    org.add_meter(sum_meter("um.tokens", "1", "1"))
    org.apply_pending()
    assert org.event_view("e1")["status"] == UNMETERED


# Ingestion -----------------------------------------------------------------------------------


def test_ingest_refusals_and_duplicates() -> None:
    org = org_with_account()
    org.add_meter(sum_meter("um.tokens", "1", "1"))
    org.add_meter(sum_meter("um.off", "1", "1", attribute="seconds", schema="call"))
    org.set_active("um.off", False)  # an inactive meter's attribute is not required
    first = event("e1", NOW - timedelta(hours=1), tokens="1.50")
    assert org.ingest(first, NOW).kind == ACCEPTED
    # the same instant in another zone, the same value written otherwise: the same event
    india = datetime.fromisoformat("2026-11-24T16:30:00+05:30")
    assert india == NOW - timedelta(hours=1)
    same = Event("e1", "call", "acc", india, (("tokens", D("1.5"), "tokens"),))
    assert org.ingest(same, NOW).kind == DUPLICATE
    assert org.ingest(event("e1", NOW - timedelta(hours=1), tokens="1.51"), NOW).kind == CONFLICT
    assert org.ingest(event("e1", NOW - timedelta(hours=2), tokens="1.5"), NOW).kind == CONFLICT
    assert org.ingest(event(None, tokens="1"), NOW).kind == NO_ID
    assert org.ingest(event("e2", tokens="1", account_id="nobody"), NOW).kind == UNKNOWN_ACCOUNT
    old = NOW - timedelta(days=45, seconds=1)
    assert org.ingest(event("e3", old, tokens="1"), NOW).kind == TOO_OLD
    assert org.ingest(event("e4", NOW - timedelta(days=44), tokens="1"), NOW).kind == ACCEPTED
    soon = NOW + timedelta(minutes=5)
    assert org.ingest(event("e5", soon + timedelta(seconds=1), tokens="1"), NOW).kind == TOO_NEW
    assert org.ingest(event("e6", soon, tokens="1"), NOW).kind == ACCEPTED
    assert org.ingest(event("e7"), NOW).kind == MISSING_ATTRIBUTE
    assert org.ingest(event("e8", schema="other"), NOW).kind == ACCEPTED
    assert set(org.events) == {"e1", "e4", "e6", "e8"}
    assert BAD_VALUE  # judged on the wire text: attribute_value below


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", D(0)),
        ("1520", D(1520)),
        ("1.50", D("1.5")),
        ("0.0000000001", SMALLEST),
        ("999999999999999999.9999999999", LARGEST),
        ("000999999999999999999.99999999990", LARGEST),
        ("1000000000000000000", None),
        ("0.00000000001", None),
        ("-1", None),
        ("1e5", None),
        (".5", None),
        ("1.", None),
        ("", None),
        ("NaN", None),
        (" 1", None),
        ("1,5", None),
    ],
)
def test_attribute_values_are_read_exactly_or_refused(text: str, value: Decimal | None) -> None:
    assert attribute_value(text) == value


def test_a_repeat_within_a_batch_counts_once() -> None:
    org = org_with_account()
    org.add_meter(count_meter("um.x", "1"))
    grant(org, "c", 10)
    outcomes = org.ingest_batch(
        [event("e1"), event("e1"), event("e1", NOW - timedelta(minutes=1))], NOW
    )
    assert [o.kind for o in outcomes] == [ACCEPTED, DUPLICATE, CONFLICT]
    org.apply_pending()
    assert org.accounts["acc"].balance_view()["availableBalance"] == 9
