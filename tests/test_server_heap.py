"""`drawdown serve` builds each worker's app with the startup heap frozen, so the garbage
collector's full collections never walk the objects the imports made (they set the p99 of
every route: 55 to 75 ms pauses under the bench's load before)."""

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from drawdown import server


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_worker_app_is_built_with_the_startup_heap_frozen(
    unfrozen: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DRAWDOWN_DATABASE_URL", f"sqlite:///{tmp_path}/heap.db")
    assert gc.get_freeze_count() == 0
    app = server.create()
    assert app.state.writes is not None
    # everything alive when the app was built is frozen, the app's own objects included
    assert gc.get_freeze_count() > 10_000
    assert not any(obj is app for obj in gc.get_objects())
