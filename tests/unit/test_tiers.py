"""Every collected test runs in CI: its tier comes from its folder, and `make test` runs them all."""
import re
import subprocess
import sys

from conftest import LANE_TIERS, REPO, TIERS


def collected(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_the_makefile_runs_unit_on_the_host_and_every_other_tier_in_each_lane():
    makefile = (REPO / "Makefile").read_text()
    declared = re.search(r"^LANE_TIERS := (.+)$", makefile, re.M)
    assert declared and [t.strip() for t in declared.group(1).split(" or ")] == list(LANE_TIERS)
    # The lanes side by side, then the tests that stop a lane, alone: together every lane tier.
    assert '-m "($(LANE_TIERS)) and not alone"' in makefile and '-m "alone"' in makefile and "pytest -m unit" in makefile
    assert {"unit", *LANE_TIERS} == set(TIERS)


def test_the_whole_tree_is_what_make_test_runs():
    everything = collected("tests")
    assert len(everything) > 400
    union = collected("tests", "-m", "unit") | collected("tests", "-m", " or ".join(LANE_TIERS))
    assert everything == union, sorted(everything - union)[:10]


def test_every_tier_folder_exists_and_has_tests():
    for tier in TIERS:
        assert list((REPO / "tests" / tier).glob("test_*.py")), tier


def test_a_test_outside_the_tier_folders_is_refused(tmp_path):
    stray = REPO / "tests" / "stray_tier_check"
    stray.mkdir()
    try:
        (stray / "test_x.py").write_text("def test_x():\n    assert True\n")
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               str(stray)], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "tests live in tests/<tier>/" in proc.stdout + proc.stderr
    finally:
        for path in sorted(stray.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        stray.rmdir()
