"""The image a container runs, read from the engine's records (core/provenance.py says where).

Those records are the engine's, so only files the caller owns (root's for a root scrun; in a
rootless engine's namespace the user is its root) that nobody else may write are read: a
record another user planted beside a bundle is not believed, and the image is "unknown".
"""
from __future__ import annotations

import functools
import os

from scrun.core import provenance
from scrun.store.owned import read_owned_json

_MAX_BYTES = 64 << 20  # containers.json of thousands of containers is a few MiB


def read_record(path: str) -> object:
    """`path`'s JSON if the caller owns it and its directory and nobody else may write either."""
    uid = os.geteuid()
    try:
        parent = os.stat(os.path.dirname(path))
    except OSError:
        return None
    if parent.st_uid != uid or parent.st_mode & 0o022:
        return None
    return read_owned_json(path, uid, _MAX_BYTES)


def image_of(engine: str, record: str, container_id: str) -> tuple[str, str]:
    """(image, digest) of the container from its engine's record; ("", "") when unknown."""
    if engine == "podman":
        image_id = provenance.podman_image_id(read_record(record), container_id)
        if not image_id:
            return "", ""
        name, digest = provenance.podman_image(read_record(provenance.podman_images_file(record)), image_id)
        return name, digest
    if engine == "docker":
        return provenance.docker_image(read_record(record))
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
