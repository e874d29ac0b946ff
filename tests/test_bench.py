"""The benchmark runs end to end in its tiny mode (figures are not checked: no timed tests)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
