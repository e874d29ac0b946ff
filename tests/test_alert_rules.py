"""The pure rules behind the events (docs/webhooks.md): thresholds judged against an
independent model, usage.uncovered's hourly reports, credit.expiring_soon's day, the retry
schedule's words, and the URL rules' verdicts on addresses."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drawdown.config import Settings, SettingsError
from drawdown.ledger.alerts import DEPLETED, judge
from drawdown.ledger.uncovered import UncoveredMark, report
from drawdown.services.url_rules import RefusedUrl, Target, check, check_addresses, check_form
from drawdown.services.webhook_settings import WebhookSettings, parse_duration, parse_schedule

D = Decimal


class ThresholdModel:
    """What a billing engineer expects, written without the code under test: each threshold
    is armed until it fires; it fires when the balance moves down to below it (0: reaches 0)
    while armed; it is armed again whenever the balance is seen at or above it."""

    def __init__(self, thresholds: list[Decimal], balance: Decimal) -> None:
        self.armed = {t: True for t in [*thresholds, D(0)]}
        self.balance = balance

    def move(self, to: Decimal) -> list[Decimal]:
        fired = []
        before, self.balance = self.balance, to
        for t in sorted(self.armed, reverse=True):

            def low(b: Decimal, t: Decimal = t) -> bool:
                return b <= 0 if t == 0 else b < t

            if not low(before):
                self.armed[t] = True  # seen at or above it (before this change)
            if low(to) and self.armed[t] and to < before:
                fired.append(t)
                self.armed[t] = False
            elif not low(to):
                self.armed[t] = True
        return fired


amounts = st.integers(min_value=0, max_value=200).map(D)


@given(
    thresholds=st.lists(st.integers(min_value=1, max_value=150).map(D), max_size=4, unique=True),
    start=amounts,
    moves=st.lists(amounts, max_size=30),
)
def test_thresholds_fire_once_per_crossing_like_the_model(
    thresholds: list[Decimal], start: Decimal, moves: list[Decimal]
) -> None:
    model = ThresholdModel(thresholds, start)
    fired: frozenset[Decimal] = frozenset()
    balance = start
    for to in moves:
        judged = judge(balance, to, tuple(thresholds), fired)
        assert judged.fired == model.move(to), (balance, to, fired)
        fired = (fired | judged.disarm) - judged.rearm
        balance = to


def test_depleted_is_judged_without_thresholds_and_a_rise_rearms() -> None:
    assert judge(D(5), D(0), (), frozenset()).fired == [DEPLETED]
    assert judge(D(0), D(0), (), frozenset({DEPLETED})).fired == []
    assert judge(D(0), D(3), (), frozenset({DEPLETED})).rearm == {DEPLETED}
    # a grant saved without the lock re-armed nothing: the next write saw the balance above
    assert judge(D(3), D(0), (), frozenset({DEPLETED})).fired == [DEPLETED]
    # a threshold set while the balance is below it fires at the next fall
    assert judge(D(50), D(40), (D(100),), frozenset()).fired == [D(100)]
    assert judge(D(50), D(60), (D(100),), frozenset()).fired == []


def test_uncovered_usage_is_reported_at_most_hourly_and_adds_up() -> None:
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)
    mark, due = report(UncoveredMark(), D("0.4"), at)
    assert due is not None and due.amount == D("0.4") and due.since == at
    mark, due = report(mark, D("0.0000000001"), at + timedelta(minutes=59, seconds=59))
    assert due is None and mark.unreported == D("0.0000000001")
    mark, due = report(mark, D(2), at + timedelta(hours=1))
    assert due is not None
    assert due.amount == D("2.0000000001")
    assert due.since == at + timedelta(minutes=59, seconds=59)
    assert mark == UncoveredMark(at + timedelta(hours=1), D(0), None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("5m", 300), ("2h", 7200), ("0.2s", 0.2), ("250ms", 0.25), ("5d", 432000)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_the_default_schedule_and_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_schedule("5s,5m,30m,2h,5h,10h,10h") == WebhookSettings().retry_schedule
    assert parse_schedule("") == ()
    for name, value in [
        ("DRAWDOWN_WEBHOOK_RETRY_SCHEDULE", "5 seconds"),
        ("DRAWDOWN_WEBHOOK_ALLOW_HTTP", "yes"),
        ("DRAWDOWN_WEBHOOK_DISABLE_AFTER", "-1d"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=name):
            Settings.from_env()
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRAWDOWN_WEBHOOK_RETRY_SCHEDULE", "1s,2m")
    monkeypatch.setenv("DRAWDOWN_WEBHOOK_ALLOW_PRIVATE", "1")
    settings = Settings.from_env().webhooks
    assert (settings.retry_schedule, settings.allow_private, settings.allow_http) == (
        (1.0, 120.0),
        True,
        False,
    )


@pytest.mark.parametrize(
    "address", ["127.0.0.2", "10.9.9.9", "172.16.0.1", "192.168.1.1", "169.254.1.1", "::1",
                "fe80::2", "fc00::1", "::ffff:127.0.0.1", "100.64.1.1", "0.0.0.0", "224.0.0.1"]
)  # fmt: skip
async def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(RefusedUrl, match="address; webhooks go to public addresses only"):
        await check_addresses(Target(address, 443), WebhookSettings())
    await check_addresses(Target(address, 443), WebhookSettings(allow_private=True))


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("::7f00:1", "loopback"),  # IPv4-compatible 127.0.0.1
        ("::ffff:169.254.169.254", "link-local"),
        ("fec0::1", "site-local"),
        ("::", "unspecified"),
        ("::ffff:100.64.0.1", "reserved"),  # shared address space (carrier NAT)
    ],
)
async def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(address: str, why: str) -> None:
    with pytest.raises(RefusedUrl, match=f"resolves to \\S+, an? {why} address"):
        await check_addresses(Target(address, 443), WebhookSettings())


@pytest.mark.parametrize(
    "host", ["2130706433", "0177.0.0.1", "0x7f000001", "127.1", "localhost", "0", "[::]"]
)
async def test_other_spellings_of_loopback_and_zero_are_refused(host: str) -> None:
    """Decimal, octal, hexadecimal and short IPv4 forms, and names: judged by what they
    resolve to, the address delivery would connect to."""
    with pytest.raises(RefusedUrl, match=r"a(n unspecified| loopback) address"):
        await check(f"https://{host}/hooks", WebhookSettings())


async def test_public_addresses_pass() -> None:
    public = ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1")
    carrying_public = ("64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8")
    for address in (*public, *carrying_public):
        await check_addresses(Target(address, 443), WebhookSettings())


def test_the_form_of_a_url() -> None:
    assert check_form("https://hooks.example.com:8443/a?b=c", WebhookSettings()) == Target(
        "hooks.example.com", 8443
    )
    assert check_form("http://x.test/h", WebhookSettings(allow_http=True)) == Target("x.test", 80)
    for url in ("https://a.test/ b", "https://a.test:99999/", "https://" + "a" * 2000):
        with pytest.raises(RefusedUrl):
            check_form(url, WebhookSettings())


def test_expiring_soon_is_due_within_the_days_before_the_last_day() -> None:
    from drawdown.ledger.credit import CreditAmounts, CreditStatus
    from drawdown.ledger.expiring import is_due
    from drawdown.ledger.records import CreditRecord

    at = datetime(2026, 11, 24, tzinfo=UTC)

    def credit(until: date | None, status: CreditStatus = CreditStatus.ACTIVE) -> CreditRecord:
        return CreditRecord(
            1, 1, 1, "cred.x", "a", "c", "USD", "p", None, date(2026, 1, 1), until, 1, None,
            None, "h", status, CreditAmounts(D(1)), at, at,
        )  # fmt: skip

    today = date(2026, 11, 24)
    assert is_due(credit(date(2026, 12, 1)), today, 7)
    assert not is_due(credit(date(2026, 12, 2)), today, 7)
    assert is_due(credit(today), today, 7)
    assert not is_due(credit(date(2026, 11, 23)), today, 7)
    assert not is_due(credit(None), today, 7)
    assert not is_due(credit(date(2026, 11, 30), CreditStatus.VOIDED), today, 7)
