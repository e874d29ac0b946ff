"""`drawdown verify` as the tests' oracle."""

from drawdown.clock import FixedClock
from drawdown.services.verify import verify
from drawdown.store.database import Database


async def assert_books_balance(db: Database, clock: FixedClock) -> None:
    async with db.read() as conn:
        problems = await verify(conn, clock.now().date())
    assert problems == []
