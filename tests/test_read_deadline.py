"""`within` (api/read_deadline.py), on its own: a read's answer or its error as they are, a 503
once the wait has passed with the read cancelled in the background, and a caller that goes away
takes its read with it."""

import asyncio

import pytest

from drawdown.api.read_deadline import within
from drawdown.errors import NotFound, Unavailable


async def test_a_prompt_read_answers_as_it_is() -> None:
    async def read() -> int:
        await asyncio.sleep(0)
        return 7

    assert await within(1, read()) == 7


async def test_a_read_that_fails_fails_as_it_is() -> None:
    async def read() -> int:
        raise NotFound("account 'a' was not found")

    with pytest.raises(NotFound, match="account 'a' was not found"):
        await within(1, read())


async def test_a_read_past_the_wait_is_503_and_is_cancelled_without_being_waited_for() -> None:
    cleaning = asyncio.Event()
    finished = asyncio.Event()

    async def read() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaning.set()
            await asyncio.sleep(0.3)  # a clean-up that waits, as on a silent connection
            finished.set()

    started = asyncio.get_running_loop().time()
    with pytest.raises(Unavailable, match=r"did not answer within 0\.1 s") as refused:
        await within(0.1, read())
    assert asyncio.get_running_loop().time() - started < 0.25
    assert refused.value.retry_after == 1
    await asyncio.wait_for(cleaning.wait(), 1)
    assert not finished.is_set()  # answered before the clean-up ended
    await asyncio.wait_for(finished.wait(), 1)


async def test_a_caller_that_goes_away_cancels_its_read() -> None:
    cancelled = asyncio.Event()

    async def read() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(within(30, read()))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), 1)
