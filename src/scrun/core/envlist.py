"""process.env of a config.json: a list of KEY=value strings (its own module: the anchor needs
only this of core.bundle, whose checks import much more)."""
from __future__ import annotations


def env_dict(items) -> dict[str, str]:
    """process.env's "KEY=value" strings as a dict (a later KEY wins, as execve's lookup does not care)."""
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            out[key] = value
    return out
