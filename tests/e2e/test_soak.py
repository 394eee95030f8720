"""The soak's CI-sized run (bench/soak.py): real podman runs and CLI cycles, mixed exit codes and
signals, a leak check after every batch. `make soak` runs the full-sized one."""
import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e
SEQUENTIAL, CONCURRENT = 20, 5


def test_soak_ci_sized_has_no_failure_and_no_leak(podman_ready, tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--sequential", str(SEQUENTIAL),
                           "--concurrent", str(CONCURRENT), "--json", str(out)],
                          capture_output=True, text=True, timeout=900)
    summary = json.loads(out.read_text())
    assert summary["failures"] == [] and summary["leaks"] == [], proc.stderr[-3000:]
    assert proc.returncode == 0
    assert summary["containers"] == 2 * (SEQUENTIAL + CONCURRENT)
    assert summary["podman_run_seconds"]["n"] == SEQUENTIAL and summary["cli_cycle_seconds_concurrent"]["n"] == CONCURRENT
    assert summary["anchor_peak_rss_mib"] > 0, "the sampler saw no anchor"
