"""Start-up of the installed forms of scrun, against the checkout's launcher (issue 32's goal: the
wheel's console script within 1.2× of the launcher; the Debian package's launcher is the same
`python3 -I -S` shape).

    bench/startup.py        (in a lane: tools/devcluster.py python --lane L -- bench/startup.py)

Builds the wheel from this checkout (offline, as tests/e2e/test_packaging.py does) into a fresh
venv, then times `scrun --root EMPTY state nosuch` — the error path of the verb engines call most,
which imports what a state call imports — with the launcher and the wheel in turns (41 rounds,
medians). Writes bench/results/startup-<lane>.json and prints a line.
"""
from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
ROUNDS = 41


def wheel_venv(tmp: pathlib.Path) -> pathlib.Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(REPO)], check=True, capture_output=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("scrun-*.whl"))
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True)
    return venv / "bin" / "scrun"


def sample(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> int:
    lane = os.environ.get("SCRUN_LANE", "host")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        programs = {"launcher": "/usr/local/bin/scrun", "wheel": str(wheel_venv(tmp))}
        root = tmp / "root"
        root.mkdir(mode=0o711)
        times: dict[str, list[float]] = {name: [] for name in programs}
        for _ in range(ROUNDS):
            for name, program in programs.items():
                times[name].append(sample([program, "--root", str(root), "state", "nosuch"]))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    result = {"lane": lane, "rounds": ROUNDS, "ms": medians, "wheel_over_launcher": medians["wheel"] / medians["launcher"],
              "python": sys.version.split()[0], "when": time.strftime("%Y-%m-%d")}
    out = REPO / "bench" / "results" / f"startup-{lane}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{lane}: state start-up, launcher {medians['launcher']:.1f} ms, wheel {medians['wheel']:.1f} ms: "
          f"{result['wheel_over_launcher']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
