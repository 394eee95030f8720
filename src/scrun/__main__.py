"""`python -m scrun` is the same as the `scrun` console script."""
from scrun.cli import entry

entry()
