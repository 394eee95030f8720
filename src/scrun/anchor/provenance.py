"""The image a container runs, read from the engine's records (core/provenance.py says where).

Those records are the engine's, so only files the caller owns (root's for a root scrun; in a
rootless engine's namespace the user is its root) that nobody else may write are read: a
record another user planted beside a bundle is not believed, and the image is "unknown".
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import stat

from scrun.core import provenance

_MAX_BYTES = 64 << 20  # containers.json of thousands of containers is a few MiB


def read_owned_json(path: str) -> object:
    """`path`'s JSON if the caller owns it (and its directory) and nobody else may write either;
    None otherwise, or when it cannot be read."""
    try:
        parent = os.stat(os.path.dirname(path))
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        uid = os.geteuid()
        if not stat.S_ISREG(st.st_mode) or any(s.st_uid != uid or s.st_mode & 0o022 for s in (st, parent)):
            return None
        with contextlib.suppress(OSError, ValueError):
            return json.loads(fh.read(_MAX_BYTES))
    return None


def image_of(engine: str, record: str, container_id: str) -> tuple[str, str]:
    """(image, digest) of the container from its engine's record; ("", "") when unknown."""
    if engine == "podman":
        image_id = provenance.podman_image_id(read_owned_json(record), container_id)
        if not image_id:
            return "", ""
        name, digest = provenance.podman_image(read_owned_json(provenance.podman_images_file(record)), image_id)
        return name, digest
    if engine == "docker":
        return provenance.docker_image(read_owned_json(record))
    return "", ""


@functools.lru_cache(maxsize=1)  # the salloc's comment and the record's image: one read
def describe_container(source: tuple[str, str] | None, container_id: str) -> tuple[str, str]:
    """(the comment's provenance text, the image for the record) for create's record_source."""
    from scrun import __version__

    if not source:
        return provenance.describe("", "", "", __version__), ""
    engine, record = source
    image, digest = image_of(engine, record, container_id)
    return provenance.describe(engine, image, digest, __version__), image
