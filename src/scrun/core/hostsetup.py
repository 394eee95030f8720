"""Pure readers of the host set-up `scrun doctor` checks: podman's containers.conf, docker's
daemon.json and /etc/subuid, /etc/subgid. Each takes text (the caller reads the files)."""
from __future__ import annotations

import json
from typing import NamedTuple

RUNTIME_NAME = "scrun"


class Registration(NamedTuple):
    named: bool          # the engine knows a runtime called scrun
    detail: str          # where, or what is missing


def podman_registration(texts: list[tuple[str, str]]) -> tuple[Registration, Registration]:
    """containers.conf files as (path, text), in podman's reading order (a later one wins):
    is scrun in [engine.runtimes], and in engine.runtime_supports_json (without it podman
    reads `state`'s JSON as text and fails)? ValueError names a file that is not TOML."""
    import tomllib

    runtime_from, json_list, json_from = "", None, ""
    for path, text in texts:
        try:
            engine = tomllib.loads(text).get("engine", {})
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        if RUNTIME_NAME in (engine.get("runtimes") or {}):
            runtime_from = path
        if "runtime_supports_json" in engine:
            json_list, json_from = engine["runtime_supports_json"], path
    named = Registration(bool(runtime_from), runtime_from or "no [engine.runtimes] scrun = [\"<path of scrun>\"]")
    supports = bool(json_list) and RUNTIME_NAME in json_list
    listed = Registration(supports, json_from if supports else
                          "scrun is not in engine.runtime_supports_json" + (f" (set in {json_from})" if json_from else
                                                                           " (podman's default list lacks it)"))
    return named, listed


def docker_registration(path: str, text: str) -> Registration:
    """daemon.json: is there a "runtimes": {"scrun": {"path": …}}? ValueError for bad JSON."""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    runtime = (doc.get("runtimes") or {}).get(RUNTIME_NAME) if isinstance(doc, dict) else None
    if isinstance(runtime, dict) and runtime.get("path"):
        return Registration(True, f"{path}: {runtime['path']}")
    return Registration(False, f"{path} has no \"runtimes\": {{\"scrun\": {{\"path\": …}}}}")


def subordinate_ids(text: str, user: str, uid: int) -> int:
    """How many subordinate ids /etc/subuid (or subgid) text gives `user` (by name or id)."""
    total = 0
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)) and fields[1].isdigit() and fields[2].isdigit():
            total += int(fields[2])
    return total
