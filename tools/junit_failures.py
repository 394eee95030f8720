#!/usr/bin/env python3
"""Print one line per failed or erroring test of a pytest --junitxml report.

    python3 tools/junit_failures.py REPORT.xml LANE

`make test` prints these last, after every lane has run: CI keeps only the tail of the output.
A missing report (the lane never ran pytest) is said too. Standard library only.
"""
from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def failures(report: str) -> list[str]:
    """`classname::name: first line of the message` for each testcase that failed or errored."""
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        for bad in case:
            if bad.tag in ("failure", "error"):
                msg = (bad.get("message") or "").strip().splitlines()
                out.append(f"{case.get('classname')}::{case.get('name')} ({bad.tag}): {msg[0][:200] if msg else ''}")
    return out


def main(argv: list[str]) -> int:
    report, lane = argv
    try:
        lines = failures(report)
    except (OSError, ET.ParseError) as exc:
        print(f"{lane}: no test report ({exc}): the lane's pytest did not run to its end")
        return 1
    for line in lines:
        print(f"{lane}: {line}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
