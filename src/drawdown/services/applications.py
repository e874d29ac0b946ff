"""Reading credit applications. Applying, capturing and releasing are writes: see
`services/writes.py` and the decisions in `ledger/applying.py`."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.errors import NotFound
from drawdown.ledger.records import AccountRecord, ApplicationRecord
from drawdown.services.paging import decode_token, encode_token
from drawdown.store import applications as store
from drawdown.store import ledger


@dataclass(frozen=True)
class ApplicationPage:
    applications: list[ApplicationRecord]
    next_token: str | None


async def _find(
    conn: AsyncConnection, account: AccountRecord, invoice_id: str
) -> ApplicationRecord:
    row = await store.find_application(conn, account.seq, invoice_id)
    if row is None:
        raise NotFound(
            f"no credit application for invoice '{invoice_id}' on account '{account.id}'"
        )
    return ApplicationRecord.from_row(row, account.id)


async def get(
    conn: AsyncConnection, org_seq: int, account_id: str, invoice_id: str
) -> ApplicationRecord:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    return await _find(conn, account, invoice_id)


async def list_page(
    conn: AsyncConnection,
    org_seq: int,
    account_id: str,
    *,
    page_size: int,
    next_token: str | None,
) -> ApplicationPage:
    account = await ledger.find_account(conn, org_seq, account_id)
    if account is None:
        raise NotFound(f"account '{account_id}' was not found")
    after = decode_token("applications", next_token)
    rows = await store.page_of_applications(conn, account.seq, after, page_size + 1)
    token = encode_token("applications", rows[page_size - 1].seq) if len(rows) > page_size else None
    return ApplicationPage(
        [ApplicationRecord.from_row(r, account_id) for r in rows[:page_size]], token
    )
