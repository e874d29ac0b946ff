"""DRAWDOWN_RATE_LIMIT: requests per second per API key, with an equal burst; over it a 429
`{"message"}` with Retry-After. In memory per process, or shared by every process in Redis."""

import asyncio
import time
import uuid

import httpx
import pytest
import redis

from drawdown.api.app import create_app
from drawdown.clock import FixedClock
from drawdown.store.database import Database
from tests.conftest import NOW, new_key
from tests.live_server import create_key, live_server

REDIS_URL = "redis://127.0.0.1:6379"


def _client(app: object, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://drawdown.test",
        headers={"Authorization": f"Bearer {key}"},
    )


def _assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json().keys() == {"message"}
    assert "too many requests" in response.json()["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 1


def _redis_reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


async def test_each_key_gets_its_rate_as_a_burst_then_429_until_the_window_moves(
    db: Database,
) -> None:
    first, second = await new_key(db), await new_key(db)
    app = create_app(db, FixedClock(NOW), rate_limit=3)
    async with _client(app, first) as one, _client(app, second) as two:
        started = time.monotonic()
        answers = [await one.get("/customers") for _ in range(5)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        for answer in answers[3:]:
            _assert_throttled(answer)
        # another key has its own count
        assert (await two.get("/customers")).status_code == 200
        # no key at all is not counted against anyone: it is a 401
        assert (await one.get("/customers", headers={"Authorization": ""})).status_code == 401
        await asyncio.sleep(max(0.0, started + 1.05 - time.monotonic()))
        assert (await one.get("/customers")).status_code == 200


async def test_without_a_rate_limit_nothing_is_throttled(db: Database) -> None:
    key = await new_key(db)
    async with _client(create_app(db, FixedClock(NOW)), key) as http:
        answers = await asyncio.gather(*[http.get("/customers") for _ in range(40)])
    assert {a.status_code for a in answers} == {200}


async def test_an_unreachable_redis_fails_open(db: Database) -> None:
    key = await new_key(db)
    app = create_app(db, FixedClock(NOW), rate_limit=1, redis_url="redis://127.0.0.1:1")
    async with _client(app, key) as http:
        answers = [await http.get("/customers") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]


@pytest.mark.skipif(not _redis_reachable(), reason="Redis is not running at 127.0.0.1:6379")
async def test_two_server_processes_share_one_limit_through_redis(database_url: str) -> None:
    prefix = f"drawdown-test-{uuid.uuid4().hex}"
    key = create_key(database_url, f"throttle-{uuid.uuid4().hex}")
    env = {
        "DRAWDOWN_RATE_LIMIT": "5",
        "DRAWDOWN_REDIS_URL": REDIS_URL,
        "DRAWDOWN_REDIS_PREFIX": prefix,
    }
    store = redis.Redis.from_url(REDIS_URL)
    try:
        with live_server(database_url, workers=2, env=env) as server:
            # a new connection per request, so both processes take requests
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {key}"},
                limits=limits,
                timeout=10,
            ) as http:
                await asyncio.sleep(1.1)  # the readiness probe carried no key; start clean
                started = time.monotonic()
                answers = await asyncio.gather(*[http.get("/customers") for _ in range(30)])
                elapsed = time.monotonic() - started
                await asyncio.sleep(1.1)
                assert (await http.get("/customers")).status_code == 200
                kept = list(store.scan_iter(f"{prefix}*"))  # a window's keys live 1 s
            ok = sum(a.status_code == 200 for a in answers)
            throttled = [a for a in answers if a.status_code == 429]
            assert ok + len(throttled) == 30
            assert 5 <= ok <= 5 * (1 + int(elapsed)), (ok, elapsed)
            for answer in throttled:
                _assert_throttled(answer)
        assert kept, "the count was not kept in Redis"
        assert not any(key.encode() in name for name in kept), "the API key reached Redis"
    finally:
        for name in store.scan_iter(f"{prefix}*"):
            store.delete(name)
        store.close()
