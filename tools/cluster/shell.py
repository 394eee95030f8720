"""Running commands, waiting, and the one error type of the cluster tool."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time


class ClusterError(Exception):
    """A set-up step failed; the message says what and how to fix it."""


def say(msg: str) -> None:
    print(f"devcluster: {msg}", file=sys.stderr, flush=True)


def run(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    proc = subprocess.run(argv, **kw)
    if check and proc.returncode != 0:
        raise ClusterError(
            f"`{' '.join(argv)}` exited {proc.returncode}: {(proc.stderr or proc.stdout or '').strip()[-2000:]}"
        )
    return proc


def log_tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n    " + "\n    ".join(text)


def wait_for(pred, timeout: float, what: str, *logs: pathlib.Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    tail = "".join("\n  " + log_tail(log) for log in logs if log is not None and log.exists())
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def write_if_changed(path: pathlib.Path, text: str, mode: int = 0o644) -> bool:
    """Atomic write; False (and no write) when the file already holds `text`."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)
    return True
