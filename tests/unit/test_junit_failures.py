"""tools/junit_failures.py: the failed tests `make test` names last, read from a junit report."""
import importlib.util
import pathlib

import pytest

pytestmark = pytest.mark.unit
_spec = importlib.util.spec_from_file_location("junit_failures", pathlib.Path(__file__).resolve().parents[2] / "tools" / "junit_failures.py")
junit_failures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(junit_failures)

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1" tests="3">
<testcase classname="tests.e2e.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.e2e.test_a" name="test_bad" time="0.1"><failure message="AssertionError: exit 1&#10;second line">trace</failure></testcase>
<testcase classname="tests.e2e.test_b" name="test_fixture" time="0.1"><error message="failed on setup with &quot;slurm down&quot;">trace</error></testcase>
<testcase classname="tests.e2e.test_b" name="test_skip" time="0.0"><skipped message="why"/></testcase>
</testsuite></testsuites>"""


def test_failures_and_errors_are_named_one_line_each(tmp_path, capsys):
    report = tmp_path / "r.xml"
    report.write_text(REPORT)
    assert junit_failures.failures(str(report)) == [
        "tests.e2e.test_a::test_bad (failure): AssertionError: exit 1",
        'tests.e2e.test_b::test_fixture (error): failed on setup with "slurm down"']
    assert junit_failures.main([str(report), "lane-x"]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("lane-x: tests.e2e.test_a::test_bad")


def test_a_lane_without_report_is_said_not_passed(tmp_path, capsys):
    assert junit_failures.main([str(tmp_path / "missing.xml"), "lane-y"]) == 1
    assert "did not run to its end" in capsys.readouterr().out
    clean = tmp_path / "clean.xml"
    clean.write_text(REPORT.split("<testcase classname=\"tests.e2e.test_a\" name=\"test_bad\"")[0] + "</testsuite></testsuites>")
    assert junit_failures.main([str(clean), "lane-z"]) == 0
