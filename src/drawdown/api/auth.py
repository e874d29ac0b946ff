"""Bearer keys: who is calling, and whether they may write."""

import time

from fastapi import Request

from drawdown.api.read_deadline import within
from drawdown.errors import Forbidden, Unauthorized
from drawdown.services.keys import Principal, find_principal
from drawdown.store.database import Database

# A revoked key must answer 401 within a second on every process: a key found is trusted for
# half a second, which still spares a lookup to nearly every request of a busy key.
_CACHE_SECONDS = 0.5


class KeyCache:
    """Known keys, remembered briefly so a request does not pay a lookup each time."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Principal, float]] = {}

    async def principal(self, db: Database, key: str) -> Principal | None:
        now = time.monotonic()
        hit = self._known.get(key)
        if hit and hit[1] > now:
            return hit[0]
        # a write's key is read too: bounded as every read is (api/read_deadline.py)
        found = await within(db.silent_after, _find(db, key))
        if found is not None:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[key] = (found, now + _CACHE_SECONDS)
        return found


async def _find(db: Database, key: str) -> Principal | None:
    async with db.read() as conn:
        return await find_principal(conn, key)


async def caller(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <api key>'")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <api key>'")
    state = request.app.state
    keys: KeyCache = state.keys
    principal = await keys.principal(state.db, key.strip())
    if principal is None:
        raise Unauthorized("the API key is not valid")
    return principal


async def writer(request: Request) -> Principal:
    principal = await caller(request)
    if principal.read_only:
        raise Forbidden("this API key is read-only; use a read-write key to change anything")
    return principal
