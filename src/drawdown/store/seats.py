"""The appliers' seats (PostgreSQL; docs/usage.md, "How it runs"): each applier holds one seat,
a session advisory lock on a connection of its own, so the seats held are exactly the live
appliers of this database, and a crashed one's seat is free the moment its session ends. An
applier also holds its seat's "behind" lock while its accounts' events wait too long, so the
others can hold their answers too (backpressure is shared, not per process).

A behind-mark counts only while its session is heard from: an applier re-reads the seats every
0.1 s (`applier.SEAT_REFRESH_SECONDS`), each time with a statement of its own session. One that
ran none for `MARK_FRESH_SECONDS` is stuck (its process stopped or hung, its session still
alive): its mark would otherwise hold every process's answers for as long as it stays stuck,
and its accounts pass to the others after `applier.STUCK_SECONDS` anyway."""

from dataclasses import dataclass

import asyncpg

# the two int4 keys of the advisory locks: (class, seat). 'draw' in ASCII, and the next.
SEAT_CLASS = 0x64726177
BEHIND_CLASS = SEAT_CLASS + 1
MAX_SEATS = 256
# a behind-mark whose session ran no statement for this long no longer counts (see above)
MARK_FRESH_SECONDS = 2.0

_TRY = "SELECT pg_try_advisory_lock($1::int, $2::int)"
_RELEASE = "SELECT pg_advisory_unlock($1::int, $2::int)"
# the seats and behind-marks held on this database (the locks of other databases on the same
# server are other deployments'); a lock taken with two int4 keys has objsubid 2. Whether the
# holder ran a statement lately: a session of another role shows no query_start unless this
# role may read all statistics, and then counts as heard from.
_HELD = """
SELECT l.classid::bigint AS class, l.objid::bigint AS seat,
       a.query_start IS NULL
       OR a.query_start > clock_timestamp() - make_interval(secs => $3) AS heard
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint IN ($1::bigint, $2::bigint)
"""


@dataclass(frozen=True)
class Held:
    seats: tuple[int, ...]  # in order
    behind: frozenset[int]  # seats whose applier is behind (and was heard from lately)


async def take_seat(conn: asyncpg.Connection) -> int | None:
    """The lowest free seat, now held by this session; None when all are taken."""
    for seat in range(MAX_SEATS):
        if await conn.fetchval(_TRY, SEAT_CLASS, seat):
            return seat
    return None


async def mark_behind(conn: asyncpg.Connection, seat: int, behind: bool) -> None:
    """Hold (or let go of) the seat's behind-mark. The caller tracks whether it holds it:
    session advisory locks stack, so each mark must be let go of exactly once."""
    await conn.fetchval(_TRY if behind else _RELEASE, BEHIND_CLASS, seat)


async def held(conn: asyncpg.Connection) -> Held:
    rows = await conn.fetch(_HELD, SEAT_CLASS, BEHIND_CLASS, MARK_FRESH_SECONDS)
    seats = sorted(row["seat"] for row in rows if row["class"] == SEAT_CLASS)
    behind = frozenset(row["seat"] for row in rows if row["class"] == BEHIND_CLASS and row["heard"])
    return Held(tuple(seats), behind)
