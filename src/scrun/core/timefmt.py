"""Slurm time strings (salloc --time, Lua slurm.time_str2mins)."""
from __future__ import annotations

import re

INFINITE = -1
INVALID = -2
_SHAPE = re.compile(r"[0-9:\-]+")


def time_str2mins(text: str) -> int:
    """Minutes for a Slurm time string, seconds rounded up; -1 for unlimited, -2 if invalid.

    Forms: `min`, `min:sec`, `h:m:s`, `d-h`, `d-h:m`, `d-h:m:s`; `-1`, `INFINITE`, `UNLIMITED`.
    """
    s = text.strip()
    if s.upper() in ("-1", "INFINITE", "UNLIMITED"):
        return INFINITE
    if not s or not _SHAPE.fullmatch(s) or s.count("-") > 1 or s.count(":") > 2:
        return INVALID
    days = 0
    if "-" in s:
        day_part, s = s.split("-", 1)
        if not day_part.isdigit() or not s:
            return INVALID  # empty, or a ':' before the '-'

        days = int(day_part)
        parts = s.split(":")
        if any(p == "" for p in parts):
            return INVALID
        nums = [int(p) for p in parts] + [0] * (3 - len(parts))
        hours, minutes, seconds = nums
    else:
        parts = s.split(":")
        if any(p == "" for p in parts):
            return INVALID
        nums = [int(p) for p in parts]
        if len(nums) == 1:
            hours, minutes, seconds = 0, nums[0], 0
        elif len(nums) == 2:
            hours, (minutes, seconds) = 0, nums
        else:
            hours, minutes, seconds = nums
    total_seconds = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return (total_seconds + 59) // 60
