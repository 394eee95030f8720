"""Which image a container runs, from the engine's own records, for the job's comment and
`scrun list` (issue 31: `sacct`/`scontrol show job` say afterwards what ran).

config.json does not name the image. The engines keep it next to the bundle:
- podman (containers/storage): the bundle is <graphroot>/overlay-containers/<id>/userdata;
  <graphroot>/overlay-containers/containers.json maps the container to its image id, and
  <graphroot>/overlay-images/images.json gives that image's names and digest.
- docker: /etc/hostname is bound from <data-root>/containers/<id>/hostname, and
  config.v2.json beside it holds the image as the user named it (Config.Image) and its id.
Pure: anchor/provenance.py reads the files (as their owner only) and hands the documents here.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What may reach the comment from an engine's record: an image reference's characters only.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+-")
_MAX = 200


def clean(text: object) -> str:
    """`text` as a comment may carry it: no spaces, quotes, `;` or control characters, bounded."""
    if not isinstance(text, str):
        return ""
    return "".join(c if c in _SAFE else "_" for c in text[:_MAX])


def record_source(bundle: str, container_id: str, binds: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """(engine, the engine's record of this container) by the bundle's place, or None."""
    parts = os.path.normpath(bundle).split(os.sep)
    if len(parts) >= 3 and parts[-3:] == ["overlay-containers", container_id, "userdata"]:
        return "podman", os.sep.join([*parts[:-2], "containers.json"])
    for destination, source in binds:
        if destination == "/etc/hostname" and source.endswith(f"/containers/{container_id}/hostname"):
            return "docker", os.path.join(os.path.dirname(source), "config.v2.json")
    return None


def podman_images_file(containers_json: str) -> str:
    """images.json of the storage whose containers.json is `containers_json`."""
    return os.path.join(os.path.dirname(os.path.dirname(containers_json)), "overlay-images", "images.json")


def podman_image_id(containers_doc: Any, container_id: str) -> str:
    for entry in containers_doc if isinstance(containers_doc, list) else ():
        if isinstance(entry, dict) and entry.get("id") == container_id:
            return entry.get("image") if isinstance(entry.get("image"), str) else ""
    return ""


def podman_image(images_doc: Any, image_id: str) -> tuple[str, str]:
    """(the image's first name, its digest) in images.json; the id when it has no name."""
    for entry in images_doc if isinstance(images_doc, list) else ():
        if isinstance(entry, dict) and entry.get("id") == image_id:
            names = entry.get("names") if isinstance(entry.get("names"), list) else []
            return clean(names[0] if names else image_id), clean(entry.get("digest"))
    return "", ""


def docker_image(config_v2: Any) -> tuple[str, str]:
    """(the image as the user named it, its id) in docker's config.v2.json."""
    if not isinstance(config_v2, dict):
        return "", ""
    config = config_v2.get("Config") if isinstance(config_v2.get("Config"), dict) else {}
    return clean(config.get("Image")), clean(config_v2.get("Image"))


def describe(engine: str, image: str, digest: str, version: str) -> str:
    """The provenance as one line of `key=value`s (the job comment's tail; slurm.argv)."""
    image, digest = clean(image), clean(digest)
    ref = f"{image}@{digest}" if image and digest and digest not in image else image or digest or "unknown"
    return f"image={ref} engine={clean(engine) or 'unknown'} scrun={clean(version)}"
