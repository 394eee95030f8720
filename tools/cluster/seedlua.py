"""The man page's "Full Container staging example" scrun.lua, cut out of the seed as written but
for its scratch_path (the one line a site sets: the seed's /run/user/ is login-local)."""
from __future__ import annotations

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seed" / "scrun.1.txt"
# Each user's copies under /scratch/seed-<uid>/: the cluster's shared filesystem.
SEED_SCRATCH_PATH = "/scratch/seed-"
SEED_SCRATCH_LINE = 'local scratch_path = "/run/user/"'


def seed_example(scratch_path: str = SEED_SCRATCH_PATH, seed: pathlib.Path = SEED) -> str:
    text = seed.read_text()
    start = text.index("local json = require 'json'")
    end = text.index("return slurm.SUCCESS", text.index("slurm.log_info(\"initialized scrun.lua\")")) + len("return slurm.SUCCESS")
    example = text[start:end] + "\n"
    if example.count(SEED_SCRATCH_LINE) != 1:
        raise ValueError(f"{seed}: the example's scratch_path line changed")
    return example.replace(SEED_SCRATCH_LINE, f'local scratch_path = "{scratch_path}"')
