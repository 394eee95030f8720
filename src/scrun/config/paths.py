"""Where container state lives by default (cheap: used on every command)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


def default_root(uid: int, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The state root when --root is not given, and a note when we had to fall back.

    root → /run/scrun (like runc's /run/runc); others → $XDG_RUNTIME_DIR/scrun, then
    /run/user/<uid>/scrun, then /tmp/scrun-<uid>. podman does not pass --root, and calls
    start/kill/delete with a minimal environment, so the choice must not depend on more.
    """
    if uid == 0:
        return "/run/scrun", None
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "scrun"), None
    run_user = f"/run/user/{uid}"
    if os.path.isdir(run_user) and os.access(run_user, os.W_OK):
        return os.path.join(run_user, "scrun"), None
    fallback = f"/tmp/scrun-{uid}"
    return fallback, f"{run_user} does not exist; using {fallback} as the state root (pass --root to choose)"
