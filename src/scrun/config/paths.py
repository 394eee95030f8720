"""Where container state lives by default (cheap: used on every command)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


def default_root(uid: int, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The state root when --root is not given, and a note when we had to fall back.

    root → /run/scrun (like runc's /run/runc), but not root inside a user namespace
    (rootless podman), which is a plain user outside it; others → $XDG_RUNTIME_DIR/scrun, then
    /run/user/<uid>/scrun, then /tmp/scrun-<uid>. podman does not pass --root, and calls
    start/kill/delete with a minimal environment, so the choice must not depend on more.
    """
    if uid == 0 and not in_user_namespace():
        return "/run/scrun", None
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "scrun"), None
    run_user = f"/run/user/{uid}"
    if os.path.isdir(run_user) and os.access(run_user, os.W_OK):
        return os.path.join(run_user, "scrun"), None
    fallback = f"/tmp/scrun-{uid if uid else outer_uid()}"
    return fallback, f"{run_user} does not exist; using {fallback} as the state root (pass --root to choose)"


def in_user_namespace() -> bool:
    """Root inside a user namespace (rootless podman) is an ordinary user outside it."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            return fh.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def outer_uid() -> int:
    """The uid that our uid 0 maps to outside the user namespace (for per-user paths)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            for line in fh:
                inside, outside, _count = line.split()
                if inside == "0":
                    return int(outside)
    except (OSError, ValueError):
        pass
    return 0
