"""Usage records to their JSON shapes (docs/usage.md). Amounts leave through `money`, exact."""

from typing import Any

from drawdown.api.jsonio import money
from drawdown.api.render import timestamp
from drawdown.ledger.usage import Meter, Rate
from drawdown.services.ingest import Fate, Outcome
from drawdown.services.usage import AccountUsage
from drawdown.store.usage import StoredEvent


def _rate(rate: Rate) -> dict[str, Any]:
    return {"credits": money(rate.credits), "perQuantity": money(rate.per_quantity)}


def meter(record: Meter) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "eventSchemaName": record.event_schema_name,
        "aggregation": record.aggregation.value,
        "attribute": record.attribute,
        "filters": [
            {"field": f"dimensions.{name}", "value": value} for name, value in record.filters
        ],
        "status": record.status.value,
        "creditRate": _rate(record.rate),
        "rates": [
            {
                **_rate(rate),
                "effectiveFrom": timestamp(rate.effective_from) if rate.effective_from else None,
            }
            for rate in record.rates
        ],
        "createdAt": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
    }


def event(record: StoredEvent) -> dict[str, Any]:
    charges = []
    for charge in record.charges:
        shown: dict[str, Any] = {
            "meterId": charge.meter_id,
            "quantity": money(charge.quantity),
            "rate": _rate(charge.rate),
        }
        if charge.exact_cost is not None:
            shown["exactCost"] = money(charge.exact_cost)
        shown["cost"] = money(charge.cost)
        shown["allocations"] = [
            {"creditId": a.credit_id, "amount": money(a.amount)} for a in charge.allocations
        ]
        shown["uncovered"] = money(charge.uncovered)
        charges.append(shown)
    return {
        "id": record.id,
        "accountId": record.account_id,
        "timestamp": timestamp(record.timestamp),
        "status": record.status.value,
        "meters": charges,
    }


def account_usage(found: AccountUsage) -> dict[str, Any]:
    return {
        "accountId": found.account_id,
        "appliedThrough": timestamp(found.applied_through) if found.applied_through else None,
        "pending": found.pending,
        "meters": [
            {
                "meterId": meter_id,
                "quantity": money(sums.quantity),
                "cost": money(sums.cost),
                "paidByCredits": money(sums.paid_by_credits),
                "paidByWallet": money(sums.paid_by_wallet),
                "uncovered": money(sums.uncovered),
                "events": sums.events,
            }
            for meter_id, sums in found.meters
        ],
    }


def ingested(outcomes: list[Outcome], ids: list[str | None]) -> tuple[int, dict[str, Any]]:
    """Togai's IngestEventResponse: 202 when every event is accepted, else 207 naming each
    refused one."""
    accepted = sum(outcome.fate is not Fate.REFUSED for outcome in outcomes)
    duplicates = sum(outcome.fate is Fate.DUPLICATE for outcome in outcomes)
    total = len(outcomes)
    if accepted == total:
        noun = "event" if total == 1 else "events"
        return 202, {
            "success": True,
            "statusCode": 202,
            "message": f"{total} {noun} accepted",
            "details": {"accepted": accepted, "duplicates": duplicates},
        }
    refused = [
        {"index": index, "id": ids[index], "reason": outcome.reason}
        for index, outcome in enumerate(outcomes)
        if outcome.fate is Fate.REFUSED
    ]
    return 207, {
        "success": False,
        "statusCode": 207,
        "message": f"{len(refused)} of {total} events refused",
        "details": {"accepted": accepted, "duplicates": duplicates, "refused": refused},
    }
