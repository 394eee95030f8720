"""pytest in several lanes at once (`devcluster test-lanes`): each lane is a cluster of its own,
so their suites can run side by side; `make test` with three lanes would not fit CI's time one
after another. Each lane's output goes to its own log, printed whole once every lane is done
(interleaved output would be unreadable), then one summary line per lane.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from cluster import manage
from cluster.lanes import LaneSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import pathlib


@dataclass
class LaneRun:
    spec: LaneSpec
    log: pathlib.Path
    proc: subprocess.Popen | None = None
    began: float = 0.0
    took: float = 0.0
    code: int | None = None


def run_side_by_side(specs: list[LaneSpec], pytest_args: list[str], logs: pathlib.Path, at_once: int) -> int:
    """Run pytest in every lane, at most `at_once` together; 0 if every lane passed."""
    logs.mkdir(parents=True, exist_ok=True)
    runs = [LaneRun(spec, logs / f"test-{spec.name}.log") for spec in specs]
    waiting, running = list(runs), []
    began = time.monotonic()
    while waiting or running:
        while waiting and len(running) < at_once:
            run = waiting.pop(0)
            args = [*pytest_args, f"--junitxml={logs / f'junit-{run.spec.name}.xml'}"]
            with open(run.log, "wb") as out:
                run.proc = subprocess.Popen(manage.pytest_argv(run.spec, args), stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=subprocess.STDOUT)
            run.began = time.monotonic()
            _say(f"{run.spec.name}: started ({len(running) + 1} lane(s) running)")
            running.append(run)
        time.sleep(0.5)
        for run in list(running):
            code = run.proc.poll()
            if code is None:
                continue
            run.code, run.took = code, time.monotonic() - run.began
            running.remove(run)
            _say(f"{run.spec.name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {run.took:.0f} s")
    for run in runs:
        print(f"=== {run.spec.name}: pytest output ({run.log}) ===", flush=True)
        sys.stdout.buffer.write(run.log.read_bytes())
        sys.stdout.flush()
    print(f"=== lanes side by side, {time.monotonic() - began:.0f} s in all ===")
    for run in runs:
        print(f"  {run.spec.name}: {'passed' if run.code == 0 else f'FAILED (exit {run.code})'} in {run.took:.0f} s — "
              f"{_last_line(run.log)}")
    sys.stdout.flush()
    return 0 if all(run.code == 0 for run in runs) else 1


def _last_line(log: pathlib.Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "no output"


def _say(msg: str) -> None:
    print(f"devcluster: test-lanes: {msg}", file=sys.stderr, flush=True)
