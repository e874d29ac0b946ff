"""The two hottest reads, answered by PostgreSQL as finished JSON in one statement.

They produce exactly the shapes `drawdown.api.render` writes (tests compare the two), so the
Python path stays the reference and the SQLite path. Amounts go out through `trim_scale`, so
`100.0000000000` leaves as `100`; PostgreSQL never writes a numeric in exponent notation.
Each row also says whether the answer is stale (a credit past its last day not yet expired, a
balance older than a day boundary), in which case the caller brings the account up to date
and asks again.
"""

from dataclasses import dataclass
from datetime import date

from drawdown.store.database import FastReads


def _stamp(column: str) -> str:
    # PostgreSQL's own ISO text (fraction trimmed, as render.timestamp writes it): cheaper
    # than to_char, which cost a quarter of this statement.
    return f"replace(({column} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'"


_CREDIT_FIELDS = f"""
    'id', c.id,
    'accountId', c.account_id,
    'customerId', c.customer_id,
    'purpose', c.purpose,
    'status', CASE WHEN c.status = 'ACTIVE' AND c.effective_until < $3
                   THEN 'EXPIRED' ELSE c.status END,
    'creditUnit', c.credit_unit,
    'creditAmount', trim_scale(c.credit_amount),
    'holdAmount', trim_scale(c.hold_amount),
    'consumedAmount', trim_scale(c.consumed_amount),
    'priority', c.priority,
    'applicableEntityIds', c.applicable_entity_ids,
    'effectiveFrom', c.effective_from,
    'effectiveUntil', c.effective_until,
    'grantorId', c.grantor_id,
    'idempotencyKey', c.idempotency_key,
    'createdAt', {_stamp("c.created_at")},
    'updatedAt', {_stamp("c.updated_at")}
"""

_TRANSACTION = f"""
    json_build_object(
        'id', t.id,
        'creditId', c.id,
        'transactionType', t.transaction_type,
        'invoiceId', t.invoice_id,
        'entityId', t.entity_id,
        'amount', trim_scale(t.amount),
        'createdAt', {_stamp("t.created_at")}
    )
"""

CREDIT_DETAILS = f"""
    SELECT c.account_seq,
           c.status = 'ACTIVE' AND c.effective_until < $3 AS stale,
           json_build_object({_CREDIT_FIELDS},
               'transactions', (
                   SELECT coalesce(json_agg({_TRANSACTION} ORDER BY t.seq), '[]'::json)
                   FROM credit_transactions t WHERE t.credit_seq = c.seq)
           )::text AS body
    FROM credits c
    WHERE c.id = $1 AND c.org_seq = $2
"""

BALANCE = f"""
    SELECT a.seq AS account_seq,
           a.bal_valid_through IS NOT NULL AND a.bal_valid_through < $3 AS stale,
           json_build_object(
               'activeCredits', trim_scale(a.bal_active_amount),
               'availableBalance', trim_scale(a.bal_applicable_left),
               'runningBalance', trim_scale(a.bal_applicable_left - a.bal_applicable_held),
               'inapplicableCredits', trim_scale(a.bal_inapplicable_left),
               'unit', a.invoice_currency,
               'lastUpdatedAt', {_stamp("a.bal_updated_at")}
           )::text AS body
    FROM accounts a
    WHERE a.id = $1 AND a.org_seq = $2 AND a.archived_at IS NULL
"""


@dataclass(frozen=True)
class JsonAnswer:
    account_seq: int
    stale: bool
    body: str


async def credit_details(
    pool: FastReads, org_seq: int, credit_id: str, today: date
) -> JsonAnswer | None:
    row = await pool.fetchrow(CREDIT_DETAILS, credit_id, org_seq, today)
    return JsonAnswer(row["account_seq"], bool(row["stale"]), row["body"]) if row else None


async def balance(pool: FastReads, org_seq: int, account_id: str, today: date) -> JsonAnswer | None:
    row = await pool.fetchrow(BALANCE, account_id, org_seq, today)
    return JsonAnswer(row["account_seq"], bool(row["stale"]), row["body"]) if row else None
