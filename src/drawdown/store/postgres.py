"""The write store on PostgreSQL: asyncpg prepared statements, no SQLAlchemy on this path.

A load is one statement: it locks every account it needs (in seq order, so groups never
deadlock) and returns everything the decisions read as JSON, which msgspec decodes into
typed rows with exact decimals. A save is one statement too: new credits (their seqs come
back from the insert), changed credits, ledger lines, balances with the accounts' version
bumps, and applications. Statements are text that asyncpg prepares once per connection and
keeps in its statement cache.

BEGIN and COMMIT cost one round trip each. asyncpg has no public pipelining, and a statement
with parameters goes through the extended protocol, one statement per Parse, so BEGIN cannot
ride with the load nor COMMIT with the save. The simple protocol would carry "BEGIN; <load>" in
one message, but only with the values written into the text as literals, planned afresh every
time, which costs more than the round trip it saves. Measured on a 2-core machine (median of
400, one connection): BEGIN 70-85 us, the same as SELECT 1; a grant-shaped load 750 us, its
save 1.1 ms, and COMMIT 1.6 ms, nearly all of it the WAL flush, which no pipelining removes.
Coalescing spreads BEGIN and COMMIT over every write of a group.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from drawdown.ledger.allocation import EntityType
from drawdown.ledger.application import ApplicationMode, ApplicationStatus
from drawdown.ledger.balance import BalanceTotals
from drawdown.ledger.changes import (
    FIRST_CANDIDATES,
    FIRST_USAGE_CANDIDATES,
    Changes,
    Holdings,
    Loaded,
)
from drawdown.ledger.credit import CreditAmounts, CreditStatus
from drawdown.ledger.records import (
    AccountRecord,
    Allocation,
    ApplicationRecord,
    AppliedLine,
    CreditRecord,
    WalletShare,
)
from drawdown.ledger.uncovered import UncoveredMark
from drawdown.ledger.usage import Aggregation, EventStatus, Meter, MeterStatus, Rate
from drawdown.ledger.usage_records import PendingEvent
from drawdown.ledger.wallet import TopupKey, WalletRecord, WalletStatus
from drawdown.store import alerts, outbox, stored_events
from drawdown.store.interface import (
    Arriving,
    BalanceMoved,
    Stored,
    Verdict,
    Wants,
    candidate_lists,
)
from drawdown.store.versions import accounts_written, check_lines

# JSON columns keep decimals exactly: written as number literals, read back as Decimal
_json_encoder = msgspec.json.Encoder(decimal_format="number")

_DRAWDOWN_ORDER = "c.priority, c.effective_until NULLS LAST, c.effective_from, c.created_at, c.id"
_IN_EFFECT = (
    "c.status = 'ACTIVE' AND c.effective_from <= {day}"
    " AND (c.effective_until IS NULL OR c.effective_until >= {day})"
)
# A credit as JSON, in the field order of `_CreditRow`.
_CREDIT_JSON = """json_build_array(
    c.seq, c.org_seq, c.account_seq, c.id, c.account_id, c.customer_id, c.credit_unit,
    c.purpose, c.applicable_entity_ids, c.effective_from, c.effective_until, c.priority,
    c.grantor_id, c.idempotency_key, c.request_hash, c.status, c.credit_amount,
    c.consumed_amount, c.hold_amount, c.expired_amount, c.voided_amount, c.created_at,
    c.updated_at)"""

# A usage meter as JSON, in the field order of `_MeterRow`, its rates oldest first.
_METER_JSON = """json_build_array(
    m.seq, m.org_seq, m.id, m.name, m.event_schema_name, m.aggregation, m.attribute,
    m.filters, m.status, m.created_at, m.updated_at,
    (SELECT json_agg(json_build_array(r.credits, r.per_quantity, r.effective_from)
                     ORDER BY r.seq)
     FROM usage_meter_rates r WHERE r.meter_seq = m.seq))"""

# A wallet as JSON, in the field order of `_WalletRow`.
_WALLET_JSON = """json_build_array(
    w.seq, w.org_seq, w.account_seq, w.id, w.account_id, w.customer_id, w.currency, w.status,
    w.effective_from, w.topped_up, w.consumed, w.held, w.entries, w.created_at, w.updated_at)"""

# $1 today; $2/$3 accounts by (org, id); $4 accounts by seq; $5/$6 credits by (org, id);
# $7/$8 credits by (org, idempotency key); $9/$10/$11 applications by (org, account id,
# invoice); $12/$13/$14 candidates by (org, account id, as_of); $15 how many candidates
# ($22 for a list only burn-down asks for).
# Accounts named by candidates and invoices are in $2/$3 too (the caller adds them); $16
# whether to lock; $17/$18 accounts whose pending usage events to read (with their orgs'
# meters), $19 how many per account; $20/$21 top-ups' Idempotency-Keys by (org, key). Every
# locked account comes with its wallet. The query runs inside `drawdown_load`, which resolves and
# locks the accounts.
_LOAD_QUERY = f"""
WITH locked AS (
    -- the accounts `drawdown_load` locked, as this statement's snapshot has them
    SELECT a.* FROM accounts a WHERE a.seq = ANY(locked_seqs)
), seen AS (
    -- the versions the locks returned (the newest rows): `drawdown_load` passes them in
    SELECT u.seq, u.version FROM unnest(locked_seqs, locked_versions) AS u(seq, version)
), apps AS (
    SELECT p.*, l.id AS account_id
    FROM unnest($9::bigint[], $10::text[], $11::text[]) AS w(org_seq, account_id, invoice_id)
    JOIN locked l ON l.org_seq = w.org_seq AND l.id = w.account_id
    JOIN credit_applications p ON p.account_seq = l.seq AND p.invoice_id = w.invoice_id
), cands AS (
    SELECT l.seq AS account_seq, w.as_of, k.seq, k.id, k.rank
    FROM (SELECT r.org_seq, r.account_id, r.as_of, max(r.first) AS first
          FROM (SELECT v.*, $15 AS first FROM unnest($12::bigint[], $13::text[], $14::date[])
                    AS v(org_seq, account_id, as_of)
                UNION ALL  -- burn-down's accounts: their first candidates on the day
                SELECT u.org_seq, u.account_id, $1, $22 FROM unnest($17::bigint[], $18::text[])
                    AS u(org_seq, account_id)) AS r
          GROUP BY r.org_seq, r.account_id, r.as_of) AS w
    JOIN locked l ON l.org_seq = w.org_seq AND l.id = w.account_id
    CROSS JOIN LATERAL (
        SELECT c.seq, c.id, row_number() OVER (ORDER BY {_DRAWDOWN_ORDER}) AS rank
        FROM credits c
        WHERE c.account_seq = l.seq AND {_IN_EFFECT.format(day="w.as_of")}
        ORDER BY {_DRAWDOWN_ORDER}
        LIMIT w.first
    ) k
), usage_accounts AS (
    SELECT l.seq, l.org_seq FROM unnest($17::bigint[], $18::text[]) AS w(org_seq, id)
    JOIN locked l ON l.org_seq = w.org_seq AND l.id = w.id
), wanted AS (
    SELECT c.seq FROM unnest($5::bigint[], $6::text[]) AS w(org_seq, id)
    JOIN credits c ON c.id = w.id AND c.org_seq = w.org_seq
    UNION
    SELECT c.seq FROM unnest($7::bigint[], $8::text[]) AS w(org_seq, key)
    JOIN credits c ON c.org_seq = w.org_seq AND c.idempotency_key = w.key
    UNION
    SELECT seq FROM cands
    UNION
    -- (OFFSET 0 keeps each lateral a nested loop from the few rows it is given: joined
    -- freely, a plan made on a young table's statistics read every ACTIVE credit of every
    -- account to find these)
    SELECT c.seq FROM locked l
    CROSS JOIN LATERAL (
        SELECT c.seq FROM credits c WHERE c.account_seq = l.seq AND c.status = 'ACTIVE'
        OFFSET 0) c
    WHERE l.bal_as_of > $1 OR l.bal_valid_through < $1
    UNION
    SELECT c.seq FROM apps p
    CROSS JOIN LATERAL json_array_elements(p.line_items) AS item
    CROSS JOIN LATERAL json_array_elements(item -> 'allocations') AS share
    JOIN credits c ON c.id = share ->> 'creditId' AND c.account_seq = p.account_seq
)
SELECT
    (SELECT json_agg(json_build_array(
        l.seq, l.org_seq, l.id, l.customer_seq, l.customer_id, l.name, l.invoice_currency,
        l.status, l.details, l.created_at, l.updated_at, l.bal_active_amount,
        l.bal_applicable_left, l.bal_applicable_held, l.bal_inapplicable_left, l.bal_as_of,
        l.bal_valid_through, l.bal_updated_at,
        l.version <> s.version,
        l.bal_as_of > $1 OR coalesce(l.bal_valid_through < $1, false),
        l.usage_applied_through, l.archived_at))
     FROM locked l JOIN seen s ON s.seq = l.seq)::text AS accounts,
    (SELECT json_agg({_CREDIT_JSON})
     FROM wanted w CROSS JOIN LATERAL (  -- by seq, one probe each (see `wanted`)
        SELECT c.* FROM credits c WHERE c.seq = w.seq OFFSET 0) c)::text AS credits,
    (SELECT json_agg(json_build_array(account_seq, as_of, ids))
     FROM (SELECT account_seq, as_of, json_agg(id ORDER BY rank) AS ids
           FROM cands GROUP BY account_seq, as_of) AS lists)::text AS candidates,
    (SELECT json_agg(json_build_array(
        p.seq, p.account_seq, p.account_id, p.invoice_id, p.mode, p.status, p.as_of,
        p.request_hash, p.line_items, p.created_at, p.updated_at))
     FROM apps p)::text AS applications,
    -- one more than a batch per account, to know whether more wait
    (SELECT json_agg(json_build_array(
        e.seq, e.account_seq, e.id, e.schema_name, e.occurred_at, e.content)
        ORDER BY e.account_seq, e.occurred_at, e.id)
     FROM usage_accounts u CROSS JOIN LATERAL (
        SELECT e.* FROM usage_events e
        WHERE e.account_seq = u.seq AND e.status = 'PENDING'
        ORDER BY e.occurred_at, e.id
        LIMIT $19 + 1) e)::text AS events,
    (SELECT json_agg({_METER_JSON} ORDER BY m.org_seq, m.id)
     FROM usage_meters m
     WHERE m.org_seq IN (SELECT org_seq FROM usage_accounts))::text AS meters,
    (SELECT json_agg({_WALLET_JSON})
     FROM wallets w WHERE w.account_seq IN (SELECT seq FROM locked))::text AS wallets,
    (SELECT json_agg(json_build_array(
        k.org_seq, k.key, k.account_seq, k.request_hash, k.entry_id, k.created_at))
     FROM unnest($20::bigint[], $21::text[]) AS w(org_seq, key)
     JOIN wallet_topup_keys k ON k.org_seq = w.org_seq AND k.key = w.key)::text AS topup_keys,
    -- balance alerts: the account's own lists, its organization's, and what has fired
    (SELECT json_agg(json_build_array(
        l.seq, aa.thresholds, aa.wallet_thresholds, oa.thresholds, oa.wallet_thresholds,
        (SELECT json_agg(json_build_array(m.kind, m.threshold))
         FROM alert_marks m WHERE m.account_seq = l.seq)))
     FROM locked l
     LEFT JOIN account_alerts aa ON aa.account_seq = l.seq
     LEFT JOIN organization_alerts oa ON oa.org_seq = l.org_seq
     WHERE aa.account_seq IS NOT NULL OR oa.org_seq IS NOT NULL
        OR EXISTS (SELECT 1 FROM alert_marks m WHERE m.account_seq = l.seq))::text AS alerts,
    (SELECT json_agg(json_build_array(
        u.account_seq, u.last_sent_at, u.unreported, u.unreported_since))
     FROM uncovered_marks u
     WHERE u.account_seq IN (SELECT seq FROM usage_accounts))::text AS uncovered
"""

# The load runs in a function of the session's own (pg_temp, made when a connection opens,
# `prepare_session`): it takes the locks first (in seq order), then reads in a second statement.
# In a VOLATILE PL/pgSQL function each statement reads a fresh snapshot, so what it reads is
# current as of the locks: one round trip, and nothing read can be older than a commit the lock
# waited for. (A single statement that locks and reads sees other tables as of its start.) The
# accounts' versions still back this up: a load that finds one stale reads again.
_LOAD_FUNCTION = """
CREATE OR REPLACE FUNCTION pg_temp.drawdown_load(
    date, bigint[], text[], bigint[], bigint[], text[], bigint[], text[], bigint[], text[],
    text[], bigint[], text[], date[], int, bool, bigint[], text[], int, bigint[], text[], int)
RETURNS TABLE (r_accounts text, r_credits text, r_candidates text, r_applications text,
               r_events text, r_meters text, r_wallets text, r_topup_keys text,
               r_alerts text, r_uncovered text)
LANGUAGE plpgsql VOLATILE AS $load$
DECLARE
    target_seqs bigint[];
    optional_seqs bigint[];
    locked_seqs bigint[];
    locked_versions bigint[];
BEGIN
    target_seqs := ARRAY(
        SELECT a.seq FROM unnest($2::bigint[], $3::text[]) AS w(org_seq, id)
        JOIN accounts a ON a.org_seq = w.org_seq AND a.id = w.id
        UNION
        SELECT unnest($4::bigint[])
        UNION
        SELECT c.account_seq FROM unnest($5::bigint[], $6::text[]) AS w(org_seq, id)
        JOIN credits c ON c.id = w.id AND c.org_seq = w.org_seq);
    -- accounts only burn-down names: taken if free, left for later if another holds them
    optional_seqs := ARRAY(
        SELECT a.seq FROM unnest($17::bigint[], $18::text[]) AS w(org_seq, id)
        JOIN accounts a ON a.org_seq = w.org_seq AND a.id = w.id
        EXCEPT SELECT unnest(target_seqs));
    IF $16 THEN
        -- FOR NO KEY UPDATE: a credit's foreign key takes FOR KEY SHARE on its account, which
        -- this lock lets through; the accounts' keys never change, so no writer needs more.
        SELECT array_agg(l.seq ORDER BY l.seq), array_agg(l.version ORDER BY l.seq)
        INTO locked_seqs, locked_versions
        FROM (SELECT a.seq, a.version FROM accounts a WHERE a.seq = ANY(target_seqs)
              ORDER BY a.seq FOR NO KEY UPDATE OF a) AS l;
        IF cardinality(optional_seqs) > 0 THEN
            -- SKIP LOCKED never waits, so it cannot deadlock with the locks taken above
            SELECT locked_seqs || coalesce(array_agg(l.seq ORDER BY l.seq), '{}'),
                   locked_versions || coalesce(array_agg(l.version ORDER BY l.seq), '{}')
            INTO locked_seqs, locked_versions
            FROM (SELECT a.seq, a.version FROM accounts a WHERE a.seq = ANY(optional_seqs)
                  ORDER BY a.seq FOR NO KEY UPDATE OF a SKIP LOCKED) AS l;
        END IF;
    ELSE
        -- a group that only adds to balances reads without locking (see the save's $67)
        SELECT array_agg(a.seq ORDER BY a.seq), array_agg(a.version ORDER BY a.seq)
        INTO locked_seqs, locked_versions
        FROM accounts a WHERE a.seq = ANY(target_seqs);
    END IF;
    RETURN QUERY {load};
END
$load$
"""

_LOAD = """
SELECT r_accounts AS accounts, r_credits AS credits, r_candidates AS candidates,
       r_applications AS applications, r_events AS events, r_meters AS meters,
       r_wallets AS wallets, r_topup_keys AS topup_keys, r_alerts AS alerts,
       r_uncovered AS uncovered
FROM pg_temp.drawdown_load(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
    $21, $22)
"""


async def prepare_session(conn: "asyncpg.Connection") -> None:
    """Make the session's load function (see `_LOAD_FUNCTION`); asyncpg calls this for every
    connection it opens."""
    await conn.execute(_LOAD_FUNCTION.replace("{load}", _LOAD_QUERY.strip()))


_METERS = f"""
SELECT json_agg({_METER_JSON} ORDER BY m.org_seq, m.id)::text
FROM usage_meters m WHERE m.org_seq = ANY($1::bigint[])
"""

# New events are inserted in (org, id) order, so two transactions storing the same ids wait on
# each other in one order. A resend finds the stored row: its hash tells a duplicate from a
# conflict. (A row committed after this statement began is not in its snapshot: the caller
# reads those hashes again.)
_INGEST = """
WITH input AS (
    SELECT v.*, a.seq AS account_seq
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                $6::text[], $7::text[], $8::timestamptz[])
        WITH ORDINALITY AS v(org_seq, account_id, id, schema_name, occurred_at, content_hash,
            content, received_at, n)
    LEFT JOIN accounts a
        ON a.org_seq = v.org_seq AND a.id = v.account_id AND a.archived_at IS NULL
), inserted AS (
    INSERT INTO usage_events (org_seq, account_seq, id, schema_name, occurred_at, content_hash,
                              content, status, received_at)
    SELECT org_seq, account_seq, id, schema_name, occurred_at, content_hash, content::json,
           'PENDING', received_at
    FROM input WHERE account_seq IS NOT NULL
    ORDER BY org_seq, id
    ON CONFLICT (org_seq, id) DO NOTHING
    RETURNING org_seq, id
)
SELECT i.account_seq, (n.id IS NOT NULL) AS inserted, e.content_hash AS existing
FROM input i
LEFT JOIN inserted n ON n.org_seq = i.org_seq AND n.id = i.id
LEFT JOIN usage_events e ON n.id IS NULL AND e.org_seq = i.org_seq AND e.id = i.id
ORDER BY i.n
"""

_EVENT_HASHES = """
SELECT e.org_seq, e.id, e.content_hash
FROM unnest($1::bigint[], $2::text[]) AS w(org_seq, id)
JOIN usage_events e ON e.org_seq = w.org_seq AND e.id = w.id
"""

_CANDIDATES = f"""
SELECT {_CREDIT_JSON}::text FROM credits c
WHERE c.account_seq = $1 AND {_IN_EFFECT.format(day="$2")}
ORDER BY {_DRAWDOWN_ORDER}
OFFSET $3 LIMIT $4
"""

_HOLDINGS = """
SELECT EXISTS (SELECT 1 FROM credits c WHERE c.account_seq = $1) AS has_credits,
       (SELECT coalesce(json_agg(p.invoice_id ORDER BY p.invoice_id), '[]'::json)
        FROM credit_applications p WHERE p.account_seq = $1 AND p.status = 'HELD')::text AS held
"""

_ACTIVE = f"""
SELECT {_CREDIT_JSON}::text FROM credits c
WHERE c.account_seq = $1 AND c.status = 'ACTIVE'
ORDER BY c.seq
"""

# New credits are inserted in the order given (by idempotency key, so that two groups sharing
# keys wait on each other in the same order); ledger lines in the order given, so their seqs
# keep the order they happened in. A line names its credit by id: an existing credit comes with
# its seq, a new one takes the seq its insert returned.
_SAVE = """
WITH new_credits AS (
    INSERT INTO credits (
        org_seq, account_seq, id, account_id, customer_id, credit_unit, purpose,
        applicable_entity_ids, effective_from, effective_until, credit_amount, priority,
        grantor_id, idempotency_key, request_hash, status, consumed_amount, hold_amount,
        expired_amount, voided_amount, created_at, updated_at)
    SELECT org_seq, account_seq, id, account_id, customer_id, credit_unit, purpose,
        entities::json, effective_from, effective_until, credit_amount, priority, grantor_id,
        idempotency_key, request_hash, status, consumed, held, expired, voided, created_at,
        updated_at
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::date[], $10::date[], $11::numeric[], $12::int[],
                $13::text[], $14::text[], $15::text[], $16::text[], $17::numeric[],
                $18::numeric[], $19::numeric[], $20::numeric[], $21::timestamptz[],
                $22::timestamptz[])
        WITH ORDINALITY AS v(org_seq, account_seq, id, account_id, customer_id, credit_unit,
            purpose, entities, effective_from, effective_until, credit_amount, priority,
            grantor_id, idempotency_key, request_hash, status, consumed, held, expired,
            voided, created_at, updated_at, n)
    ORDER BY n
    RETURNING id, seq
), changed AS (
    UPDATE credits AS c
    SET status = v.status, consumed_amount = v.consumed, hold_amount = v.held,
        expired_amount = v.expired, voided_amount = v.voided, updated_at = v.updated_at
    FROM unnest($23::bigint[], $24::text[], $25::numeric[], $26::numeric[], $27::numeric[],
                $28::numeric[], $29::timestamptz[])
        AS v(seq, status, consumed, held, expired, voided, updated_at)
    WHERE c.seq = v.seq
    RETURNING 1
), lines AS (
    INSERT INTO credit_transactions
        (credit_seq, id, transaction_type, invoice_id, entity_id, amount, created_at)
    SELECT coalesce(v.credit_seq, n.seq), v.id, v.kind, v.invoice_id, v.entity_id, v.amount,
           v.created_at
    FROM unnest($30::bigint[], $31::text[], $32::text[], $33::text[], $34::text[],
                $35::text[], $36::numeric[], $37::timestamptz[])
        WITH ORDINALITY AS v(credit_seq, credit_id, id, kind, invoice_id, entity_id, amount,
            created_at, n)
    LEFT JOIN new_credits n ON n.id = v.credit_id
    ORDER BY v.n
    RETURNING 1
), written AS (
    UPDATE accounts AS a
    SET version = a.version + 1,
        bal_active_amount = CASE WHEN NOT v.moved THEN a.bal_active_amount
            WHEN $67 THEN a.bal_active_amount + v.active ELSE v.active END,
        bal_applicable_left = CASE WHEN NOT v.moved THEN a.bal_applicable_left
            WHEN $67 THEN a.bal_applicable_left + v.left_ ELSE v.left_ END,
        bal_applicable_held = CASE WHEN NOT v.moved THEN a.bal_applicable_held
            WHEN $67 THEN a.bal_applicable_held + v.held ELSE v.held END,
        bal_inapplicable_left = CASE WHEN NOT v.moved THEN a.bal_inapplicable_left
            WHEN $67 THEN a.bal_inapplicable_left + v.pending ELSE v.pending END,
        bal_as_of = CASE WHEN v.moved THEN v.as_of ELSE a.bal_as_of END,
        bal_valid_through = CASE WHEN NOT v.moved THEN a.bal_valid_through
            WHEN NOT $67 THEN v.through
            ELSE least(a.bal_valid_through, v.through) END,
        bal_updated_at = CASE WHEN NOT v.moved THEN a.bal_updated_at
            ELSE greatest(a.bal_updated_at, v.updated_at) END,
        -- greatest() passes over NULL: the latest usage timestamp applied only moves forward
        usage_applied_through = greatest(a.usage_applied_through, v.usage_through),
        -- the account's own fields, when an update or a delete changed them
        name = CASE WHEN v.profiled THEN v.name ELSE a.name END,
        invoice_currency = CASE WHEN v.profiled THEN v.currency ELSE a.invoice_currency END,
        status = CASE WHEN v.profiled THEN v.status ELSE a.status END,
        details = CASE WHEN v.profiled THEN v.details::json ELSE a.details END,
        updated_at = CASE WHEN v.profiled THEN v.changed_at ELSE a.updated_at END,
        archived_at = CASE WHEN v.profiled THEN v.archived_at ELSE a.archived_at END
    FROM unnest($38::bigint[], $39::bool[], $40::numeric[], $41::numeric[], $42::numeric[],
                $43::numeric[], $44::date[], $45::date[], $46::timestamptz[],
                $68::timestamptz[], $125::bool[], $126::text[], $127::text[], $128::text[],
                $129::text[], $130::timestamptz[], $131::timestamptz[], $132::text[])
        AS v(seq, moved, active, left_, held, pending, as_of, through, updated_at,
            usage_through, profiled, name, currency, status, details, changed_at, archived_at,
            loaded_currency)
    WHERE a.seq = v.seq
      -- adding ($67): only to a balance that holds on the writer's day, and stays exact, of
      -- an account neither archived nor given another currency since it was read
      AND (NOT $67 OR NOT v.moved OR (
          a.bal_as_of <= v.as_of
          AND (a.bal_valid_through IS NULL OR a.bal_valid_through >= v.as_of)
          AND a.bal_active_amount + v.active < 1e28
          AND a.archived_at IS NULL AND a.invoice_currency = v.loaded_currency))
    RETURNING 1
), inserted AS (
    INSERT INTO credit_applications (
        org_seq, account_seq, invoice_id, mode, status, as_of, request_hash, applied_amount,
        remaining_amount, line_items, created_at, updated_at)
    SELECT a.org_seq, v.account_seq, v.invoice_id, v.mode, v.status, v.as_of, v.request_hash,
           v.applied, v.remaining, v.line_items::json, v.created_at, v.updated_at
    FROM unnest($47::bigint[], $48::text[], $49::text[], $50::text[], $51::date[],
                $52::text[], $53::numeric[], $54::numeric[], $55::text[], $56::timestamptz[],
                $57::timestamptz[])
        WITH ORDINALITY AS v(account_seq, invoice_id, mode, status, as_of, request_hash,
            applied, remaining, line_items, created_at, updated_at, n)
    JOIN accounts a ON a.seq = v.account_seq
    ORDER BY v.n
    RETURNING account_seq, invoice_id, seq
), updated AS (
    UPDATE credit_applications AS p
    SET mode = v.mode, status = v.status, as_of = v.as_of, request_hash = v.request_hash,
        applied_amount = v.applied, remaining_amount = v.remaining,
        line_items = v.line_items::json, updated_at = v.updated_at
    FROM unnest($58::bigint[], $59::text[], $60::text[], $61::date[], $62::text[],
                $63::numeric[], $64::numeric[], $65::text[], $66::timestamptz[])
        AS v(seq, mode, status, as_of, request_hash, applied, remaining, line_items,
            updated_at)
    WHERE p.seq = v.seq
    RETURNING 1
), applied AS (
    -- only a PENDING event ($151) is applied: one applied twice would fail the count and roll
    -- back. The status is a parameter, not a literal, so that no generic plan can match the
    -- pending events' partial index and read every pending event (a backlog) to find a few
    -- by seq: planned on a young table's statistics, it did.
    UPDATE usage_events AS e
    SET status = v.status, results = v.results::json, meter_ids = v.meter_ids,
        applied_at = v.applied_at
    FROM unnest($69::bigint[], $70::text[], $71::text[], $72::text[], $73::timestamptz[])
        AS v(seq, status, results, meter_ids, applied_at)
    WHERE e.seq = v.seq AND e.status = $151
    RETURNING 1
), sums AS (
    INSERT INTO usage_totals AS t (account_seq, meter_seq, org_seq, quantity, cost,
                                   paid_by_credits, paid_by_wallet, uncovered, events)
    SELECT v.account_seq, v.meter_seq, a.org_seq, v.quantity, v.cost, v.credits, v.wallet,
           v.uncovered, v.events
    FROM unnest($74::bigint[], $75::bigint[], $76::numeric[], $77::numeric[], $78::numeric[],
                $79::numeric[], $80::numeric[], $81::bigint[])
        AS v(account_seq, meter_seq, quantity, cost, credits, wallet, uncovered, events)
    JOIN accounts a ON a.seq = v.account_seq
    ORDER BY v.account_seq, v.meter_seq
    ON CONFLICT (account_seq, meter_seq) DO UPDATE
    SET quantity = t.quantity + excluded.quantity, cost = t.cost + excluded.cost,
        paid_by_credits = t.paid_by_credits + excluded.paid_by_credits,
        paid_by_wallet = t.paid_by_wallet + excluded.paid_by_wallet,
        uncovered = t.uncovered + excluded.uncovered, events = t.events + excluded.events
    RETURNING 1
), new_wallets AS (
    INSERT INTO wallets (org_seq, account_seq, id, account_id, customer_id, currency, status,
                         effective_from, topped_up, consumed, held, entries, created_at,
                         updated_at)
    SELECT org_seq, account_seq, id, account_id, customer_id, currency, status, effective_from,
           topped_up, consumed, held, entries, created_at, updated_at
    FROM unnest($82::bigint[], $83::bigint[], $84::text[], $85::text[], $86::text[],
                $87::text[], $88::text[], $89::timestamptz[], $90::numeric[], $91::numeric[],
                $92::numeric[], $93::bigint[], $94::timestamptz[], $95::timestamptz[])
        WITH ORDINALITY AS v(org_seq, account_seq, id, account_id, customer_id, currency, status,
            effective_from, topped_up, consumed, held, entries, created_at, updated_at, n)
    ORDER BY n
    RETURNING account_seq, seq
), changed_wallets AS (
    UPDATE wallets AS w
    SET status = v.status, effective_from = v.effective_from, topped_up = v.topped_up,
        consumed = v.consumed, held = v.held, entries = v.entries, updated_at = v.updated_at
    FROM unnest($96::bigint[], $97::text[], $98::timestamptz[], $99::numeric[], $100::numeric[],
                $101::numeric[], $102::bigint[], $103::timestamptz[])
        AS v(seq, status, effective_from, topped_up, consumed, held, entries, updated_at)
    WHERE w.seq = v.seq
    RETURNING 1
), entries AS (
    -- an entry of a wallet made in this save takes the seq its insert returned
    INSERT INTO wallet_entries (wallet_seq, id, number, entry_type, status, amount,
                                closing_balance, entity_id, invoice_id, created_at, updated_at)
    SELECT coalesce(nullif(v.wallet_seq, 0), nw.seq), v.id, v.number, v.kind, v.status,
           v.amount, v.closing, v.entity_id, v.invoice_id, v.created_at, v.updated_at
    FROM unnest($104::bigint[], $105::bigint[], $106::text[], $107::bigint[], $108::text[],
                $109::text[], $110::numeric[], $111::numeric[], $112::text[], $113::text[],
                $114::timestamptz[], $115::timestamptz[])
        WITH ORDINALITY AS v(wallet_seq, account_seq, id, number, kind, status, amount, closing,
            entity_id, invoice_id, created_at, updated_at, n)
    LEFT JOIN new_wallets nw ON nw.account_seq = v.account_seq
    ORDER BY v.n
    RETURNING 1
), entry_changes AS (
    -- only an ON_HOLD entry changes, once: one changed twice would fail the count
    UPDATE wallet_entries AS e
    SET status = v.status, updated_at = v.updated_at
    FROM unnest($116::text[], $117::text[], $118::timestamptz[]) AS v(id, status, updated_at)
    WHERE e.id = v.id AND e.status = 'ON_HOLD'
    RETURNING 1
), topup_keys AS (
    INSERT INTO wallet_topup_keys (org_seq, key, account_seq, request_hash, entry_id, created_at)
    SELECT * FROM unnest($119::bigint[], $120::text[], $121::bigint[], $122::text[],
                         $123::text[], $124::timestamptz[])
    RETURNING 1
), outbox AS (
    -- the events of the change (docs/webhooks.md), in the order they happened
    INSERT INTO events (id, org_seq, type, actor, account_seq, occurred_at, data)
    SELECT v.id, v.org_seq, v.type, v.actor, v.account_seq, v.occurred_at, v.data
    FROM unnest($133::text[], $134::bigint[], $135::text[], $136::text[], $137::bigint[],
                $138::timestamptz[], $139::text[])
        WITH ORDINALITY AS v(id, org_seq, type, actor, account_seq, occurred_at, data, n)
    ORDER BY v.n
    RETURNING seq, org_seq, type
), fanned AS (
    -- each to every enabled endpoint of its organization that takes its type, due at once
    -- (by the database's clock, which delivery keeps: not the writer's, which tests may fix)
    INSERT INTO webhook_deliveries
        (endpoint_seq, event_seq, status, attempts, next_attempt_at, created_at)
    SELECT w.seq, o.seq, 'PENDING', 0, now(), now()
    FROM outbox o
    JOIN webhook_endpoints w ON w.org_seq = o.org_seq AND w.status = 'ENABLED'
        AND (w.event_types IS NULL OR strpos(w.event_types, ',' || o.type || ',') > 0)
    ORDER BY o.seq, w.seq
    RETURNING 1
), marked AS (
    INSERT INTO alert_marks AS m (account_seq, kind, threshold, fired_at)
    SELECT v.account_seq, v.kind, v.threshold, v.fired_at
    FROM unnest($140::bigint[], $141::text[], $142::numeric[], $143::timestamptz[])
        AS v(account_seq, kind, threshold, fired_at)
    ORDER BY v.account_seq, v.kind, v.threshold
    ON CONFLICT (account_seq, kind, threshold) DO UPDATE SET fired_at = excluded.fired_at
    RETURNING 1
), armed AS (
    DELETE FROM alert_marks AS m
    USING unnest($144::bigint[], $145::text[], $146::numeric[]) AS v(account_seq, kind, threshold)
    WHERE m.account_seq = v.account_seq AND m.kind = v.kind AND m.threshold = v.threshold
    RETURNING 1
), uncovered AS (
    INSERT INTO uncovered_marks AS u (account_seq, last_sent_at, unreported, unreported_since)
    SELECT * FROM unnest($147::bigint[], $148::timestamptz[], $149::numeric[], $150::timestamptz[])
    ON CONFLICT (account_seq) DO UPDATE
    SET last_sent_at = excluded.last_sent_at, unreported = excluded.unreported,
        unreported_since = excluded.unreported_since
    RETURNING 1
)
SELECT (SELECT json_agg(json_build_array(id, seq)) FROM new_credits)::text AS credit_seqs,
       (SELECT json_agg(json_build_array(account_seq, invoice_id, seq)) FROM inserted)::text
           AS application_seqs,
       (SELECT count(*) FROM changed) AS changed,
       (SELECT count(*) FROM lines) AS lines,
       (SELECT count(*) FROM written) AS written,
       (SELECT count(*) FROM updated) AS updated,
       (SELECT count(*) FROM applied) AS applied,
       (SELECT count(*) FROM sums) AS sums,
       (SELECT json_agg(json_build_array(account_seq, seq)) FROM new_wallets)::text
           AS wallet_seqs,
       (SELECT count(*) FROM changed_wallets) AS changed_wallets,
       (SELECT count(*) FROM entries) AS entries,
       (SELECT count(*) FROM entry_changes) AS entry_changes,
       (SELECT count(*) FROM topup_keys) AS topup_keys,
       (SELECT count(*) FROM outbox) AS outbox,
       (SELECT count(*) FROM fanned) AS fanned,
       (SELECT count(*) FROM marked) + (SELECT count(*) FROM armed) AS marks,
       (SELECT count(*) FROM uncovered) AS uncovered
"""


class _AccountRow(msgspec.Struct, array_like=True):
    seq: int
    org_seq: int
    id: str
    customer_seq: int
    customer_id: str
    name: str
    invoice_currency: str
    status: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    active_amount: Decimal
    applicable_left: Decimal
    applicable_held: Decimal
    inapplicable_left: Decimal
    as_of: date
    valid_through: date | None
    balance_updated_at: datetime
    stale: bool
    behind: bool  # the kept balance does not hold on the day asked for
    usage_applied_through: datetime | None
    archived_at: datetime | None

    def record(self) -> AccountRecord:
        return AccountRecord(
            seq=self.seq,
            org_seq=self.org_seq,
            id=self.id,
            customer_seq=self.customer_seq,
            customer_id=self.customer_id,
            name=self.name,
            invoice_currency=self.invoice_currency,
            status=self.status,
            details=self.details,
            created_at=self.created_at,
            updated_at=self.updated_at,
            totals=BalanceTotals(
                self.active_amount,
                self.applicable_left,
                self.applicable_held,
                self.inapplicable_left,
            ),
            as_of=self.as_of,
            valid_through=self.valid_through,
            balance_updated_at=self.balance_updated_at,
            usage_applied_through=self.usage_applied_through,
            archived_at=self.archived_at,
        )


class _WalletRow(msgspec.Struct, array_like=True):
    seq: int
    org_seq: int
    account_seq: int
    id: str
    account_id: str
    customer_id: str
    currency: str
    status: WalletStatus
    effective_from: datetime
    topped_up: Decimal
    consumed: Decimal
    held: Decimal
    entries: int
    created_at: datetime
    updated_at: datetime

    def record(self) -> WalletRecord:
        return WalletRecord(
            seq=self.seq,
            org_seq=self.org_seq,
            account_seq=self.account_seq,
            id=self.id,
            account_id=self.account_id,
            customer_id=self.customer_id,
            currency=self.currency,
            status=self.status,
            effective_from=self.effective_from,
            topped_up=self.topped_up,
            consumed=self.consumed,
            held=self.held,
            entries=self.entries,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class _TopupKeyRow(msgspec.Struct, array_like=True):
    org_seq: int
    key: str
    account_seq: int
    request_hash: str
    entry_id: str
    created_at: datetime


class _CreditRow(msgspec.Struct, array_like=True):
    seq: int
    org_seq: int
    account_seq: int
    id: str
    account_id: str
    customer_id: str
    credit_unit: str
    purpose: str
    applicable_entity_ids: list[str] | None
    effective_from: date
    effective_until: date | None
    priority: int
    grantor_id: str | None
    idempotency_key: str | None
    request_hash: str
    status: CreditStatus
    credit_amount: Decimal
    consumed: Decimal
    held: Decimal
    expired: Decimal
    voided: Decimal
    created_at: datetime
    updated_at: datetime

    def record(self) -> CreditRecord:
        return CreditRecord(
            seq=self.seq,
            org_seq=self.org_seq,
            account_seq=self.account_seq,
            id=self.id,
            account_id=self.account_id,
            customer_id=self.customer_id,
            credit_unit=self.credit_unit,
            purpose=self.purpose,
            applicable_entity_ids=self.applicable_entity_ids,
            effective_from=self.effective_from,
            effective_until=self.effective_until,
            priority=self.priority,
            grantor_id=self.grantor_id,
            idempotency_key=self.idempotency_key,
            request_hash=self.request_hash,
            status=self.status,
            amounts=CreditAmounts(
                self.credit_amount, self.consumed, self.held, self.expired, self.voided
            ),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class _CandidateList(msgspec.Struct, array_like=True):
    account_seq: int
    as_of: date
    ids: list[str]


class _StoredAllocation(msgspec.Struct, rename="camel"):
    amount: Decimal
    credit_id: str | None = None
    # the wallet's share (docs/wallet.md): its wallet and the entry that holds or debits it
    wallet_id: str | None = None
    entry_id: str | None = None


class _StoredLine(msgspec.Struct, rename="camel"):
    entity_id: str
    entity_type: EntityType
    amount: Decimal
    allocations: list[_StoredAllocation]


class _ApplicationRow(msgspec.Struct, array_like=True):
    seq: int
    account_seq: int
    account_id: str
    invoice_id: str
    mode: ApplicationMode
    status: ApplicationStatus
    as_of: date
    request_hash: str
    line_items: list[_StoredLine]
    created_at: datetime
    updated_at: datetime

    def record(self) -> ApplicationRecord:
        return ApplicationRecord(
            account_id=self.account_id,
            invoice_id=self.invoice_id,
            status=self.status,
            mode=self.mode,
            as_of=self.as_of,
            lines=[
                AppliedLine(
                    entity_id=line.entity_id,
                    entity_type=line.entity_type,
                    amount=line.amount,
                    allocations=tuple(
                        Allocation(share.credit_id, share.amount)
                        for share in line.allocations
                        if share.credit_id is not None
                    ),
                    wallet=next(
                        (
                            WalletShare(share.wallet_id, share.amount, share.entry_id or "")
                            for share in line.allocations
                            if share.wallet_id is not None
                        ),
                        None,
                    ),
                )
                for line in self.line_items
            ],
            created_at=self.created_at,
            updated_at=self.updated_at,
            request_hash=self.request_hash,
            seq=self.seq,
        )


class _EventRow(msgspec.Struct, array_like=True):
    seq: int
    account_seq: int
    id: str
    schema_name: str
    occurred_at: datetime
    content: stored_events.Content

    def record(self) -> PendingEvent:
        return stored_events.pending_event(
            self.seq, self.account_seq, self.id, self.schema_name, self.occurred_at, self.content
        )


class _AlertsRow(msgspec.Struct, array_like=True):
    account_seq: int
    own: list[str] | None
    own_wallet: list[str] | None
    organization: list[str] | None
    organization_wallet: list[str] | None
    fired: list[tuple[str, Decimal]] | None


class _UncoveredRow(msgspec.Struct, array_like=True):
    account_seq: int
    last_sent_at: datetime | None
    unreported: Decimal
    unreported_since: datetime | None


class _RateRow(msgspec.Struct, array_like=True):
    credits: Decimal
    per_quantity: Decimal
    effective_from: datetime | None


class _MeterRow(msgspec.Struct, array_like=True):
    seq: int
    org_seq: int
    id: str
    name: str
    event_schema_name: str
    aggregation: Aggregation
    attribute: str | None
    filters: list[tuple[str, str]]
    status: MeterStatus
    created_at: datetime
    updated_at: datetime
    rates: list[_RateRow]

    def record(self) -> Meter:
        return Meter(
            seq=self.seq,
            org_seq=self.org_seq,
            id=self.id,
            name=self.name,
            event_schema_name=self.event_schema_name,
            aggregation=self.aggregation,
            attribute=self.attribute,
            filters=tuple(self.filters),
            status=self.status,
            rates=tuple(Rate(r.credits, r.per_quantity, r.effective_from) for r in self.rates),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


_accounts = msgspec.json.Decoder(list[_AccountRow], float_hook=Decimal)
_events = msgspec.json.Decoder(list[_EventRow])
_meters = msgspec.json.Decoder(list[_MeterRow])
_credits = msgspec.json.Decoder(list[_CreditRow])
_credit = msgspec.json.Decoder(_CreditRow)
_candidates = msgspec.json.Decoder(list[_CandidateList])
_applications = msgspec.json.Decoder(list[_ApplicationRow])
_alerts = msgspec.json.Decoder(list[_AlertsRow])
_uncovered = msgspec.json.Decoder(list[_UncoveredRow])
_new_seqs = msgspec.json.Decoder(list[tuple[str, int]])
_new_application_seqs = msgspec.json.Decoder(list[tuple[int, str, int]])
_wallets = msgspec.json.Decoder(list[_WalletRow])
_topup_keys = msgspec.json.Decoder(list[_TopupKeyRow])
_invoice_ids = msgspec.json.Decoder(list[str])
_new_wallet_seqs = msgspec.json.Decoder(list[tuple[int, int]])


def _json_text(value: Any) -> str:
    return _json_encoder.encode(value).decode()


class PostgresTransaction:
    def __init__(self, conn: "asyncpg.Connection") -> None:
        self._conn = conn
        # how many times a load found its snapshot older than its locks and read again
        self.stale_reloads = 0

    async def load(self, wants: Wants, *, lock: bool = True) -> Loaded:
        named = set(wants.accounts)
        named.update((org_seq, account_id) for org_seq, account_id, _ in wants.invoices)
        named.update((org_seq, account_id) for org_seq, account_id, _ in wants.candidates)
        credit_ids = sorted(wants.credits)
        keys = sorted(wants.idempotency_keys)
        invoices = sorted(wants.invoices)
        candidates = sorted(wants.candidates)
        usage = sorted(wants.usage)
        topup_keys = sorted(wants.topup_keys)
        args = (
            wants.today,
            [org for org, _ in named],
            [account_id for _, account_id in named],
            sorted(wants.account_seqs),
            [org for org, _ in credit_ids],
            [credit_id for _, credit_id in credit_ids],
            [org for org, _ in keys],
            [key for _, key in keys],
            [org for org, _, _ in invoices],
            [account_id for _, account_id, _ in invoices],
            [invoice_id for _, _, invoice_id in invoices],
            [org for org, _, _ in candidates],
            [account_id for _, account_id, _ in candidates],
            [as_of for _, _, as_of in candidates],
            FIRST_CANDIDATES,
            lock,
            [org for org, _ in usage],
            [account_id for _, account_id in usage],
            wants.usage_batch,
            [org for org, _ in topup_keys],
            [key for _, key in topup_keys],
            FIRST_USAGE_CANDIDATES,
        )
        while True:
            row = await self._conn.fetchrow(_LOAD, *args)
            accounts = _accounts.decode(row["accounts"]) if row["accounts"] else []
            if not any(account.stale for account in accounts):
                break
            # The statement waited for a lock while another transaction wrote one of these
            # accounts and committed: what it read is older than the lock. Read again; the
            # locks are held now, so nothing this statement reads can change under it (only
            # an account found for the first time can be stale again, so this ends).
            self.stale_reloads += 1
        return _loaded(wants, row, accounts)

    async def meters(self, org_seqs: Iterable[int]) -> dict[int, list[Meter]]:
        row = await self._conn.fetchrow(_METERS, sorted(set(org_seqs)))
        found: dict[int, list[Meter]] = {}
        for meter in _meters.decode(row[0] or "[]"):
            found.setdefault(meter.org_seq, []).append(meter.record())
        return found

    async def event_hashes(self, keys: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        found = await self._conn.fetch(
            _EVENT_HASHES, [org for org, _ in keys], [event_id for _, event_id in keys]
        )
        return {(row["org_seq"], row["id"]): row["content_hash"] for row in found}

    async def ingest(self, events: list[Arriving]) -> list[Stored]:
        rows = await self._conn.fetch(
            _INGEST,
            [a.org_seq for a in events],
            [a.event.account_id for a in events],
            [a.event.id for a in events],
            [a.event.schema_name for a in events],
            [a.event.timestamp for a in events],
            [a.content_hash for a in events],
            [a.event.content_json for a in events],
            [a.received_at for a in events],
        )
        results: list[Stored] = []
        unseen: list[int] = []  # stored by a transaction that committed after our snapshot
        for n, row in enumerate(rows):
            if row["account_seq"] is None:
                results.append(Stored(Verdict.UNKNOWN_ACCOUNT, None))
            elif row["inserted"]:
                results.append(Stored(Verdict.NEW, row["account_seq"]))
            else:
                if row["existing"] is None:
                    unseen.append(n)
                same = row["existing"] == events[n].content_hash
                verdict = Verdict.DUPLICATE if same else Verdict.CONFLICT
                results.append(Stored(verdict, row["account_seq"]))
        if unseen:
            hashes = await self.event_hashes(
                [(events[n].org_seq, events[n].event.id) for n in unseen]
            )
            for n in unseen:
                arriving = events[n]
                stored_hash = hashes[(arriving.org_seq, arriving.event.id)]
                same = stored_hash == arriving.content_hash
                verdict = Verdict.DUPLICATE if same else Verdict.CONFLICT
                results[n] = Stored(verdict, results[n].account_seq)
        return results

    async def candidates(
        self, account_seq: int, as_of: date, offset: int, limit: int
    ) -> list[CreditRecord]:
        rows = await self._conn.fetch(_CANDIDATES, account_seq, as_of, offset, limit)
        return [_credit.decode(row[0]).record() for row in rows]

    async def active_credits(self, account_seq: int) -> list[CreditRecord]:
        rows = await self._conn.fetch(_ACTIVE, account_seq)
        return [_credit.decode(row[0]).record() for row in rows]

    async def holdings(self, account_seq: int) -> Holdings:
        row = await self._conn.fetchrow(_HOLDINGS, account_seq)
        return Holdings(row["has_credits"], tuple(_invoice_ids.decode(row["held"])))

    async def save(
        self, changes: Changes, *, added_to: dict[int, AccountRecord] | None = None
    ) -> None:
        if not changes:
            return
        check_lines(changes)
        adding = added_to is not None
        if added_to is not None:
            # the balances move by what the decisions added, onto whatever they hold now
            changes = replace(
                changes,
                accounts={
                    seq: replace(account, totals=account.totals - added_to[seq].totals)
                    for seq, account in changes.accounts.items()
                },
            )
        new = sorted(
            changes.new_credits,
            key=lambda c: (c.idempotency_key is None, c.idempotency_key or ""),
        )
        changed = list(changes.credits.values())
        seq_of = {credit.id: credit.seq for credit in changed}
        lines = changes.lines
        written = sorted(accounts_written(changes))
        moved = [changes.accounts.get(seq) for seq in written]
        inserted = [(key, a) for key, a in changes.applications.items() if a.seq == 0]
        updated = [a for a in changes.applications.values() if a.seq != 0]
        events = changes.events
        sums = changes.usage_sums
        notices = changes.outbox
        fired = sorted(key for key, at in changes.alert_marks.items() if at is not None)
        rearmed = sorted(key for key, at in changes.alert_marks.items() if at is None)
        uncovered = dict(sorted(changes.uncovered.items()))
        made_wallets = [w for w in changes.wallets.values() if w.seq == 0]
        changed_wallets = [w for w in changes.wallets.values() if w.seq != 0]
        args = (
            [c.org_seq for c in new],
            [c.account_seq for c in new],
            [c.id for c in new],
            [c.account_id for c in new],
            [c.customer_id for c in new],
            [c.credit_unit for c in new],
            [c.purpose for c in new],
            [_json_text(c.applicable_entity_ids) for c in new],
            [c.effective_from for c in new],
            [c.effective_until for c in new],
            [c.amounts.credit_amount for c in new],
            [c.priority for c in new],
            [c.grantor_id for c in new],
            [c.idempotency_key for c in new],
            [c.request_hash for c in new],
            [c.status.value for c in new],
            [c.amounts.consumed for c in new],
            [c.amounts.held for c in new],
            [c.amounts.expired for c in new],
            [c.amounts.voided for c in new],
            [c.created_at for c in new],
            [c.updated_at for c in new],
            [c.seq for c in changed],
            [c.status.value for c in changed],
            [c.amounts.consumed for c in changed],
            [c.amounts.held for c in changed],
            [c.amounts.expired for c in changed],
            [c.amounts.voided for c in changed],
            [c.updated_at for c in changed],
            [seq_of.get(line.credit_id) for line in lines],
            [line.credit_id for line in lines],
            [line.id for line in lines],
            [line.transaction_type.value for line in lines],
            [line.invoice_id for line in lines],
            [line.entity_id for line in lines],
            [line.amount for line in lines],
            [line.created_at for line in lines],
            written,
            [a is not None for a in moved],
            [a.totals.active_amount if a else None for a in moved],
            [a.totals.applicable_left if a else None for a in moved],
            [a.totals.applicable_held if a else None for a in moved],
            [a.totals.inapplicable_left if a else None for a in moved],
            [a.as_of if a else None for a in moved],
            [a.valid_through if a else None for a in moved],
            [a.balance_updated_at if a else None for a in moved],
            [account_seq for (account_seq, _), _ in inserted],
            [a.invoice_id for _, a in inserted],
            [a.mode.value for _, a in inserted],
            [a.status.value for _, a in inserted],
            [a.as_of for _, a in inserted],
            [a.request_hash for _, a in inserted],
            [a.applied for _, a in inserted],
            [a.remaining for _, a in inserted],
            [_json_text(a.stored_lines()) for _, a in inserted],
            [a.created_at for _, a in inserted],
            [a.updated_at for _, a in inserted],
            [a.seq for a in updated],
            [a.mode.value for a in updated],
            [a.status.value for a in updated],
            [a.as_of for a in updated],
            [a.request_hash for a in updated],
            [a.applied for a in updated],
            [a.remaining for a in updated],
            [_json_text(a.stored_lines()) for a in updated],
            [a.updated_at for a in updated],
            adding,
            [changes.applied_through.get(seq) for seq in written],
            [e.seq for e in events],
            [e.status.value for e in events],
            [_json_text(e.stored_results()) for e in events],
            [e.meter_ids() for e in events],
            [e.applied_at for e in events],
            [account_seq for account_seq, _ in sums],
            [meter_seq for _, meter_seq in sums],
            [s.quantity for s in sums.values()],
            [s.cost for s in sums.values()],
            [s.paid_by_credits for s in sums.values()],
            [s.paid_by_wallet for s in sums.values()],
            [s.uncovered for s in sums.values()],
            [s.events for s in sums.values()],
            *_wallet_args(made_wallets, changed_wallets, changes),
            *_profile_args(written, changes, moved),
            [e.id for e in notices],
            [e.org_seq for e in notices],
            [e.type.value for e in notices],
            [e.actor for e in notices],
            [e.account_seq for e in notices],
            [e.at for e in notices],
            [outbox.data_json(e) for e in notices],
            [seq for seq, _, _ in fired],
            [kind.value for _, kind, _ in fired],
            [threshold for _, _, threshold in fired],
            [changes.alert_marks[key] for key in fired],
            [seq for seq, _, _ in rearmed],
            [kind.value for _, kind, _ in rearmed],
            [threshold for _, _, threshold in rearmed],
            list(uncovered),
            [mark.last_sent_at for mark in uncovered.values()],
            [mark.unreported for mark in uncovered.values()],
            [mark.unreported_since for mark in uncovered.values()],
            EventStatus.PENDING.value,
        )
        row = await self._conn.fetchrow(_SAVE, *args)
        new_seqs = _new_seqs.decode(row["credit_seqs"] or "[]")
        wallet_seqs = _new_wallet_seqs.decode(row["wallet_seqs"] or "[]")
        application_seqs = _new_application_seqs.decode(row["application_seqs"] or "[]")
        counts = (
            len(new_seqs),
            row["changed"],
            row["lines"],
            row["written"],
            len(application_seqs),
            row["updated"],
            row["applied"],
            row["sums"],
            len(wallet_seqs),
            row["changed_wallets"],
            row["entries"],
            row["entry_changes"],
            row["topup_keys"],
            row["outbox"],
        )
        expected = (
            len(new),
            len(changed),
            len(lines),
            len(written),
            len(inserted),
            len(updated),
            len(events),
            len(sums),
            len(made_wallets),
            len(changed_wallets),
            len(changes.wallet_entries),
            len(changes.entry_changes),
            len(changes.topup_keys),
            len(notices),
        )
        if adding and counts[3] < expected[3]:
            raise BalanceMoved("a balance no longer holds on this day; lock and count it")
        if counts != expected:
            # a credit, account or application that is not there: the whole save rolls back
            raise RuntimeError(f"the save wrote {counts} rows, meant {expected}")
        seqs = dict(new_seqs)
        for credit in new:
            credit.seq = seqs[credit.id]
        for account_seq, invoice_id, seq in application_seqs:
            changes.applications[(account_seq, invoice_id)].seq = seq
        for account_seq, seq in wallet_seqs:
            changes.wallets[account_seq].seq = seq


def _wallet_args(
    made: list[WalletRecord], changed: list[WalletRecord], changes: Changes
) -> tuple[list[Any], ...]:
    """The save's $82-$124: wallets made and changed, entries, entries' new statuses, keys."""
    entries = changes.wallet_entries
    status_changes = list(changes.entry_changes.values())
    keys = changes.topup_keys
    return (
        [w.org_seq for w in made],
        [w.account_seq for w in made],
        [w.id for w in made],
        [w.account_id for w in made],
        [w.customer_id for w in made],
        [w.currency for w in made],
        [w.status.value for w in made],
        [w.effective_from for w in made],
        [w.topped_up for w in made],
        [w.consumed for w in made],
        [w.held for w in made],
        [w.entries for w in made],
        [w.created_at for w in made],
        [w.updated_at for w in made],
        [w.seq for w in changed],
        [w.status.value for w in changed],
        [w.effective_from for w in changed],
        [w.topped_up for w in changed],
        [w.consumed for w in changed],
        [w.held for w in changed],
        [w.entries for w in changed],
        [w.updated_at for w in changed],
        [e.wallet_seq for e in entries],
        [e.account_seq for e in entries],
        [e.id for e in entries],
        [e.number for e in entries],
        [e.entry_type.value for e in entries],
        [e.status.value for e in entries],
        [e.amount for e in entries],
        [e.closing_balance for e in entries],
        [e.entity_id for e in entries],
        [e.invoice_id for e in entries],
        [e.created_at for e in entries],
        [e.updated_at for e in entries],
        [c.entry_id for c in status_changes],
        [c.status.value for c in status_changes],
        [c.updated_at for c in status_changes],
        [k.org_seq for k in keys],
        [k.key for k in keys],
        [k.account_seq for k in keys],
        [k.request_hash for k in keys],
        [k.entry_id for k in keys],
        [k.created_at for k in keys],
    )


def _profile_args(
    written: list[int], changes: Changes, moved: list[AccountRecord | None]
) -> tuple[list[Any], ...]:
    """The save's $125-$132, per account written: its own fields when they changed, and the
    currency a balance it adds to was read with."""
    profiles = [changes.profiles.get(seq) for seq in written]
    return (
        [p is not None for p in profiles],
        [p.name if p else None for p in profiles],
        [p.invoice_currency if p else None for p in profiles],
        [p.status if p else None for p in profiles],
        [_json_text(p.details) if p else None for p in profiles],
        [p.updated_at if p else None for p in profiles],
        [p.archived_at if p else None for p in profiles],
        [a.invoice_currency if a else None for a in moved],
    )


def _loaded(wants: Wants, row: Any, accounts: list[_AccountRow]) -> Loaded:
    loaded = Loaded()
    behind = set()
    for account in accounts:
        loaded.accounts[account.seq] = account.record()
        loaded.account_ids[(account.org_seq, account.id)] = account.seq
        if account.behind:
            behind.add(account.seq)
            loaded.active[account.seq] = []
    credits = sorted(
        (credit.record() for credit in _credits.decode(row["credits"] or "[]")),
        key=lambda credit: credit.seq,
    )
    for credit in credits:
        loaded.credits[credit.id] = credit
        if credit.account_seq in behind and credit.status is CreditStatus.ACTIVE:
            loaded.active[credit.account_seq].append(credit.id)
        key = (credit.org_seq, credit.idempotency_key or "")
        if credit.idempotency_key is not None and key in wants.idempotency_keys:
            loaded.by_key[key] = credit.id
    for found in _candidates.decode(row["candidates"] or "[]"):
        loaded.candidates[(found.account_seq, found.as_of)] = found.ids
    for (org_seq, account_id, as_of), first in candidate_lists(wants).items():
        seq = loaded.account_ids.get((org_seq, account_id))
        if seq is not None:
            ids = loaded.candidates.setdefault((seq, as_of), [])
            loaded.complete[(seq, as_of)] = len(ids) < first
    for application in _applications.decode(row["applications"] or "[]"):
        loaded.applications[(application.account_seq, application.invoice_id)] = (
            application.record()
        )
    for org_seq, account_id in wants.usage:
        seq = loaded.account_ids.get((org_seq, account_id))
        if seq is not None:
            loaded.pending[seq] = []
            loaded.meters.setdefault(org_seq, [])
    for event in _events.decode(row["events"] or "[]"):
        loaded.pending[event.account_seq].append(event.record())
    for seq, events in loaded.pending.items():
        loaded.pending_more[seq] = len(events) > wants.usage_batch
        del events[wants.usage_batch :]
    for meter in _meters.decode(row["meters"] or "[]"):
        loaded.meters[meter.org_seq].append(meter.record())
    for wallet in _wallets.decode(row["wallets"] or "[]"):
        loaded.wallets[wallet.account_seq] = wallet.record()
    for used in _topup_keys.decode(row["topup_keys"] or "[]"):
        loaded.topup_keys[(used.org_seq, used.key)] = TopupKey(
            used.org_seq,
            used.key,
            used.account_seq,
            used.request_hash,
            used.entry_id,
            used.created_at,
        )
    for kept in _alerts.decode(row["alerts"] or "[]"):
        own = (kept.own, kept.own_wallet)
        organization = (kept.organization, kept.organization_wallet)
        loaded.alerts[kept.account_seq] = alerts.alerts_of(own, organization, kept.fired or [])
    for mark in _uncovered.decode(row["uncovered"] or "[]"):
        loaded.uncovered[mark.account_seq] = UncoveredMark(
            mark.last_sent_at, mark.unreported, mark.unreported_since
        )
    return loaded


PoolSource = Callable[[], Awaitable["asyncpg.Pool"]]


class PostgresStore:
    """Write transactions on the process's asyncpg pool (owned by `Database`, which closes it;
    the pool's sessions carry `lock_timeout`, so a lock held past the wait is 55P03)."""

    def __init__(self, pool: PoolSource, wait_seconds: float) -> None:
        self._pool = pool
        self._wait = wait_seconds

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        pool = await self._pool()
        async with pool.acquire(timeout=self._wait) as conn:
            tx = PostgresTransaction(conn)
            try:
                await conn.execute("BEGIN")
                yield tx
                await conn.execute("COMMIT")
            except TimeoutError:
                # a statement went unanswered (the pool's command timeout): the database is
                # silent, and a ROLLBACK would wait as long. Cut off, the session can never
                # COMMIT what it began; the server rolls it back.
                conn.terminate()
                raise
            except BaseException:
                await roll_back(conn)
                raise


async def roll_back(conn: "asyncpg.Connection") -> None:
    """End the transaction; a connection that cannot is closed, never pooled mid-transaction."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    try:
        await conn.execute("ROLLBACK")
    except Exception:
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise
