"""Driver failures judged once, here, and turned into domain errors: nothing above the store
matches on an asyncpg, sqlite3 or pool class (see errors.py).

A failure is one of:
- RETRY: a deadlock or serialization failure; the transaction was rolled back, run it again;
- LOST: the connection broke (a terminated backend, a dropped socket); what was not committed
  was rolled back, so work that had not reached COMMIT may run again on a new connection;
- UNAVAILABLE: the database refuses connections, is unreachable, or is busy past its wait.
Anything else is not the database's fault and passes through unchanged.
"""

import enum
import sqlite3

import asyncpg
from sqlalchemy import exc

from drawdown.errors import Conflict, Unavailable


class Fault(enum.Enum):
    RETRY = "retry"
    LOST = "lost"
    UNAVAILABLE = "unavailable"


# 40P01 deadlock_detected, 40001 serialization_failure
_RETRY_SQLSTATES = {"40P01", "40001"}
# 08 connection exception, 53 insufficient resources (too many connections), 57P operator
# intervention (admin shutdown, crash shutdown, cannot connect now, database dropped), 55P03
# lock_not_available (a row lock held past lock_timeout)
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57P", "55P03")
_SQLITE_BUSY_CODES = {5, 6, 14}  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN
_UNIQUE_VIOLATION = "23505"


def _chain(error: BaseException) -> list[BaseException]:
    """The error and what it wraps (SQLAlchemy's `orig`, causes, contexts), nearest first."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo and len(found) < 20:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return found


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else None


def _judge_one(error: BaseException) -> Fault | None:
    state = _sqlstate(error)
    if state in _RETRY_SQLSTATES:
        return Fault.RETRY
    if state is not None and state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
        return Fault.LOST if state.startswith(("08", "57P01", "57P02")) else Fault.UNAVAILABLE
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return Fault.LOST
    if isinstance(error, asyncpg.exceptions.ConnectionDoesNotExistError):
        return Fault.LOST
    if isinstance(error, asyncpg.exceptions.InterfaceError) and "closed" in str(error):
        return Fault.LOST
    if isinstance(error, exc.TimeoutError):  # no pooled connection became free in time
        return Fault.UNAVAILABLE
    if isinstance(error, sqlite3.OperationalError):
        code = getattr(error, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF in _SQLITE_BUSY_CODES) or "locked" in str(error):
            return Fault.UNAVAILABLE
        return None
    if isinstance(error, OSError):  # refused, unreachable, name not found, timed out
        return Fault.UNAVAILABLE
    return None


def judge(error: BaseException) -> Fault | None:
    for link in _chain(error):
        fault = _judge_one(link)
        if fault is not None:
            return fault
    return None


def is_unique_violation(error: BaseException) -> bool:
    for link in _chain(error):
        if _sqlstate(link) == _UNIQUE_VIOLATION:
            return True
        if isinstance(link, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(link):
            return True
    return False


def domain_error(error: BaseException, *, committing: bool = False) -> Exception | None:
    """The domain error for a driver failure, or None when it is not one the store knows."""
    fault = judge(error)
    if fault is Fault.LOST and committing:
        return Unavailable(
            "the connection to the database was lost while the request was being committed, "
            "so it may or may not have been applied; retry it with the same idempotency key"
        )
    if fault is Fault.UNAVAILABLE and committing:
        # a statement unanswered (asyncpg's command timeout) or a socket error at COMMIT: the
        # server may have committed before the answer was lost
        return Unavailable(
            "the database stopped answering while the request was being committed, so it may "
            "or may not have been applied; retry it with the same idempotency key"
        )
    if fault is Fault.LOST:
        return Unavailable(
            "the connection to the database was lost; the request was not applied; retry it"
        )
    if fault is Fault.UNAVAILABLE:
        return Unavailable(
            "the database is unreachable or busy; the request was not applied; retry after a moment"
        )
    if fault is Fault.RETRY:
        return Unavailable(
            "the request kept meeting concurrent writes to the same records and was not "
            "applied; retry it"
        )
    if is_unique_violation(error):
        return Conflict("the request conflicts with a record written at the same time; retry it")
    return None
