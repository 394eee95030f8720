"""Turn parsed arguments into the frozen Settings object (the one place CLI globals meet config)."""
from __future__ import annotations

import os

from scrun.config.paths import read_identity
from scrun.config.settings import Settings
from scrun.config.settings import build_settings as _build


def build_settings(args) -> Settings:
    """`args`: argparse's namespace or cli.fast's FastArgs (the same attributes)."""
    return _build(root_flag=args.root, slurm_conf_flag=args.slurm_conf, env=os.environ,
                  identity=read_identity(), verbose=args.verbose, debug=args.debug, log_file=args.log,
                  log_format=args.log_format)
