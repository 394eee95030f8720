"""Reading a JSON file scrun did not write but must trust only from its owner: the engine's
records of a container (anchor/provenance.py), a node's CDI specs (cli/cdirun.py)."""
from __future__ import annotations

import contextlib
import json
import os
import stat


def read_owned_json(path: str, owner: int, max_bytes: int) -> object:
    """`path`'s JSON when it is a regular file of `owner` that nobody else may write (opened
    without following a link; at most max_bytes read); None otherwise, or when it is unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != owner or st.st_mode & 0o022:
            return None
        with contextlib.suppress(OSError, ValueError):
            return json.loads(fh.read(max_bytes))
    return None
