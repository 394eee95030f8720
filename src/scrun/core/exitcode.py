"""How a child's end becomes the container's exit code."""
from __future__ import annotations


def exit_code_from_returncode(returncode: int) -> int:
    """subprocess returncode → shell-style code: N stays N, killed by signal S → 128+S."""
    if returncode < 0:
        return 128 + (-returncode)
    return returncode & 0xFF


def exit_code_for_signal(signum: int) -> int:
    return 128 + signum
