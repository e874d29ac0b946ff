"""A read answers within the database wait (`DRAWDOWN_DATABASE_WAIT`) and a margin
(`Database.silent_after`), or 503 with Retry-After.

The pool's and the lock waits bound only what starts waiting. A statement already sent to a
database that stopped answering (a hung server, a network that drops packets without a reset)
would hold its read for as long as that lasts, and the readiness probe with it. A read changes
nothing, so once that time has passed it is abandoned: answered 503 at once, and cancelled in the
background, where its connection's clean-up may wait on the silent database without holding
the answer (PostgreSQL's side of such a connection ends by store/dead_peers.py's settings).

The two hottest reads (api/endpoints.py) skip the task this takes: on PostgreSQL their
statements are bounded by themselves (store/database.FastReads).

Writes are not cut short this way: a write's transaction may still commit after its answer,
and a 503 says nothing was applied. The write store's statements time out instead (asyncpg's
command timeout, store/database.py), and a transaction whose statement timed out is cut off
before its COMMIT is sent, so the server rolls it back.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from drawdown.errors import Unavailable

T = TypeVar("T")

# reads given up on, still cleaning up: kept so they are not garbage-collected mid-way
_abandoned: set["asyncio.Task[Any]"] = set()


async def within(seconds: float, read: Coroutine[Any, Any, T]) -> T:
    """What `read` returns or raises, or `Unavailable` once `seconds` have passed."""
    task = asyncio.ensure_future(read)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:  # the caller went away: so does the read
        task.cancel()
        raise
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_abandoned.discard)
        raise Unavailable(
            f"the database did not answer within {seconds:g} s; nothing was changed; "
            "retry after a moment"
        )
    return task.result()
