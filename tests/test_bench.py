"""The benchmark runs end to end in its tiny mode (figures are not checked: no timed tests)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ENGINE

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"
KEYS = {
    "details_vs_baseline",
    "balance_vs_baseline",
    "grant_vs_baseline",
    "debit_spread_vs_baseline",
    "debit_hot_vs_baseline",
    "debit_spread_vs_pgbench",
    "balance_10k_vs_10",
    "debit_10k_vs_10",
    "debit_spread_p99_ms",
    "debit_hot_p99_ms",
    "rss_mb_per_worker",
    "usage_spread_vs_pgbench",
    "usage_hot_vs_pgbench",
    "usage_lag_p99_s",
    "ingest_single_vs_baseline",
}


@pytest.mark.skipif(ENGINE != "postgresql", reason="the bench runs on PostgreSQL; once is enough")
@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (apt-get install wrk)")
def test_bench_tiny_ends_with_the_json_line() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--tiny"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == KEYS
    assert all(isinstance(value, int | float) and value > 0 for value in figures.values())
    flagged = [line for line in done.stdout.splitlines() if line.startswith("!!")]
    assert "no scenario had errors" in done.stdout, (flagged, done.stderr[-3000:])


def bench_module() -> Any:
    sys.path.insert(0, str(BENCH.parent))
    try:
        import run as bench  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH.parent))
    return bench


def test_a_usage_only_run_reports_only_what_it_measured() -> None:
    """`--usage-only` runs the baseline, usage's scenarios and pgbench: its JSON line holds
    their figures, and none made up for the scenarios it skipped."""
    bench = bench_module()
    assert bench.parse_options(["--quick", "--usage-only"]).usage_only
    assert not bench.parse_options(["--quick"]).usage_only
    seen = {
        name: bench.Measurement(name, per_second, 1.0, 2.0, 0)
        for name, per_second in (
            ("baseline", 10_000.0),
            ("ingest_single", 1_500.0),
            ("usage_spread", 9_000.0),
            ("usage_hot", 12_000.0),
            ("pgbench", 6_000.0),
        )
    }
    figures = bench.summary(seen, 110.0, [0.5, 1.5])
    assert figures == {
        "rss_mb_per_worker": 110.0,
        "usage_spread_vs_pgbench": 1.5,
        "usage_hot_vs_pgbench": 2.0,
        "usage_lag_p99_s": 1.5,
        "ingest_single_vs_baseline": 0.15,
    }
    assert len(bench.seed_grants(bench.PROFILES["tiny"], usage_only=True)) == 21  # 20 and hot


@pytest.mark.skipif(ENGINE != "postgresql", reason="burn_cost measures PostgreSQL; once is enough")
def test_burn_cost_ends_with_the_json_line() -> None:
    script = BENCH.parent / "burn_cost.py"
    done = subprocess.run(
        [sys.executable, str(script), "--accounts", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {
        "cpu_us_per_account",
        "cpu_us_per_event",
        "wall_us_per_account",
        "wall_us_per_event",
    }
    assert all(isinstance(value, int | float) for value in figures.values())


def test_the_cpu_watch_counts_the_workers_time_apart() -> None:
    """The usage log's CPU per event: a worker's CPU time between start and stop, counted as
    the workers', not PostgreSQL's."""
    bench = bench_module()
    watch = bench.CpuWatch([os.getpid()])
    watch.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    watch.stop()
    workers, postgres = watch.spent
    assert 0.15 <= workers <= 5
    assert postgres >= 0
    assert bench.cpu_seconds([os.getpid(), 0]).keys() == {os.getpid()}  # pid 0: no such file
