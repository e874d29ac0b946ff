"""The store's judgement of driver failures: a refused or lost connection is 503, a deadlock
is retried, a bug stays a bug, however deeply the failure is wrapped."""

import sqlite3

import asyncpg

from drawdown.errors import Unavailable
from drawdown.store.faults import Fault, domain_error, judge


def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as error:
            raise RuntimeError("pool checkout failed") from error
    except RuntimeError as outer:
        return outer


def test_refused_connections_are_recognised_however_wrapped() -> None:
    refused = asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    assert judge(refused) is Fault.UNAVAILABLE
    assert judge(_wrapped(refused)) is Fault.UNAVAILABLE
    assert judge(_wrapped(ConnectionRefusedError())) is Fault.UNAVAILABLE
    assert isinstance(domain_error(_wrapped(refused)), Unavailable)
    waited = asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")
    assert judge(_wrapped(waited)) is Fault.UNAVAILABLE


def test_terminated_backends_are_lost_connections() -> None:
    terminated = asyncpg.exceptions.AdminShutdownError("terminating connection")
    assert judge(_wrapped(terminated)) is Fault.LOST
    assert judge(asyncpg.exceptions.ConnectionDoesNotExistError("closed")) is Fault.LOST


def test_deadlocks_and_serialization_failures_are_retried() -> None:
    assert judge(_wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock"))) is Fault.RETRY
    assert judge(asyncpg.exceptions.SerializationError("could not serialize")) is Fault.RETRY


def test_sqlite_busy_is_unavailable() -> None:
    assert judge(_wrapped(sqlite3.OperationalError("database is locked"))) is Fault.UNAVAILABLE
    assert judge(sqlite3.OperationalError("no such table: credits")) is None


def test_other_failures_stay_bugs() -> None:
    assert judge(ValueError("a bug")) is None
    assert judge(_wrapped(KeyError("x"))) is None
    assert domain_error(_wrapped(KeyError("x"))) is None
    assert judge(asyncpg.exceptions.CheckViolationError("bal_check")) is None


def test_an_unanswered_statement_is_unavailable_and_says_whether_it_may_have_committed() -> None:
    unanswered = TimeoutError()  # asyncpg's command timeout
    assert judge(unanswered) is Fault.UNAVAILABLE
    before = domain_error(unanswered)
    assert isinstance(before, Unavailable) and "was not applied" in str(before)
    for failure in (unanswered, ConnectionResetError()):  # any unavailability at COMMIT
        during = domain_error(failure, committing=True)
        assert isinstance(during, Unavailable)
        assert "may or may not have been applied" in str(during)
        assert "same idempotency key" in str(during)
