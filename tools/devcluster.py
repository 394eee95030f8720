#!/usr/bin/env python3
"""Local Slurm lanes for developing and testing scrun (see tools/cluster/).

    tools/devcluster.py up [--lane L] [--nodes N]   install what is missing, start, wait idle
    tools/devcluster.py down | status | lanes | exec | test

Runs with the system Python and the standard library only: it has to work before the
project's virtual environment exists.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from cluster.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
