"""Where container state lives by default (cheap: used on every command)."""
from __future__ import annotations

import os

from scrun.core.identity import INITIAL_NAMESPACE_MAP, Identity, parse_id_map

# Not typing.TYPE_CHECKING: importing typing is ~7 ms, and every verb without --root comes here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def default_root(identity: Identity, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The state root when --root is not given, and a note when we had to fall back.

    root → /run/scrun (like runc's /run/runc), but not root inside a user namespace
    (rootless podman), which is a plain user outside it; others → $XDG_RUNTIME_DIR/scrun, then
    /run/user/<real uid>/scrun, then /tmp/scrun-<real uid>. podman does not pass --root, and calls
    start/kill/delete with a minimal environment, so the choice must not depend on more.
    """
    if identity.uid == 0 and not identity.in_user_namespace:
        return "/run/scrun", None
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "scrun"), None
    run_user = f"/run/user/{identity.real_uid}"
    if os.path.isdir(run_user) and os.access(run_user, os.W_OK):
        return os.path.join(run_user, "scrun"), None
    fallback = f"/tmp/scrun-{identity.real_uid}"
    return fallback, f"{run_user} does not exist; using {fallback} as the state root (pass --root to choose)"


def read_identity() -> Identity:
    """Our ids, inside and outside the user namespace we run in (the initial one: the same)."""
    uid, gid = os.getuid(), os.getgid()
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            uid_map = parse_id_map(fh.read())
        with open("/proc/self/gid_map", encoding="ascii") as fh:
            gid_map = parse_id_map(fh.read())
    except (OSError, ValueError):
        uid_map = gid_map = INITIAL_NAMESPACE_MAP
    return Identity.from_maps(uid, gid, uid_map, gid_map)
