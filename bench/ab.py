#!/usr/bin/env python3
"""A/B: the create → start → stopped → delete cycle of another scrun source tree against this
one, in the same lane, sampled in turns with the srun floor (run.timed_together).

Why: this VM's speed drifts by a third within minutes, so two `make bench` runs cannot show a
10 ms change; samples taken in turns can. `make bench-ab AB_BASE=<rev>` extracts <rev>'s src/
and runs this in every lane:

    bench/ab.py BASE_SRC [--rounds N]

BASE runs through a copy of the installed launcher (/usr/local/bin/scrun) that names BASE_SRC
instead of this repository's src/; both use the lane's Python and packages.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run as bench  # noqa: E402

LAUNCHER = pathlib.Path("/usr/local/bin/scrun")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_src", type=pathlib.Path, help="the src/ directory of the other tree")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    head_src = str(bench.REPO / "src")
    launcher = LAUNCHER.read_text()
    if head_src not in launcher:
        print(f"ab: {LAUNCHER} does not name {head_src}: run `make install` from this tree", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="scrun-ab-") as tmp:
        tmp = pathlib.Path(tmp)
        base_launcher = tmp / "scrun-base"
        base_launcher.write_text(launcher.replace(head_src, str(args.base_src.resolve())))
        base_launcher.chmod(0o755)
        bundle = bench.make_bundle(tmp)
        fns, phases = {"srun": lambda: bench.run(["srun", f"--container={bundle}", "--", "/bin/true"])}, {}
        for name, scrun in (("base", [str(base_launcher)]), ("head", [str(LAUNCHER)])):
            cycle, phases[name] = bench.cycle_runner(bundle, tmp / f"root-{name}")

            def with_scrun(cycle=cycle, scrun=scrun):
                bench.SCRUN = scrun  # cycle_runner reads it per call
                cycle()
            fns[name] = with_scrun
        times = bench.timed_together(fns, reps=args.rounds)
    floor = times["srun"]["median_s"]
    print(f"srun floor {floor * 1000:.0f} ms; medians of {args.rounds} rounds taken in turns")
    print("| | cycle | × floor | " + " | ".join(phases["head"]) + " |")
    print("|---" * (3 + len(phases["head"])) + "|")
    for name in ("base", "head"):
        cells = [f"{statistics.median(values[1:]) * 1000:.0f}" for values in phases[name].values()]
        print(f"| {name} | {times[name]['median_s'] * 1000:.0f} | {times[name]['median_s'] / floor:.2f} | "
              + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
