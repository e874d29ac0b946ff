"""The error handler's judgement: a refused database connection is 503, not a 500."""

import asyncpg

from drawdown.api.errors import _database_unreachable


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
    assert _database_unreachable(refused)
    assert _database_unreachable(_wrapped(refused))
    assert _database_unreachable(_wrapped(ConnectionRefusedError()))


def test_other_failures_stay_bugs() -> None:
    assert not _database_unreachable(ValueError("a bug"))
    assert not _database_unreachable(_wrapped(KeyError("x")))
