"""`python -m scrun` is the same as the `scrun` console script."""
import sys

from scrun.cli import main

sys.exit(main())
