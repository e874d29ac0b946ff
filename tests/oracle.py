"""`drawdown verify` as the tests' oracle, on one organization's books."""

from sqlalchemy import select

from drawdown.clock import FixedClock
from drawdown.services.verify import verify
from drawdown.store.database import Database
from drawdown.store.tables import organizations


async def books_problems(db: Database, clock: FixedClock, org_name: str) -> list[str]:
    async with db.read() as conn:
        query = select(organizations.c.seq).where(organizations.c.name == org_name)
        org_seq = (await conn.execute(query)).scalar_one()
        return await verify(conn, clock.now().date(), org_seq)


async def assert_books_balance(db: Database, clock: FixedClock, org_name: str) -> None:
    problems = await books_problems(db, clock, org_name)
    assert problems == [], "\n".join(problems)
