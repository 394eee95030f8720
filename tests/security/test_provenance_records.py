"""The image named in a job's comment comes from the engine's own records (anchor.provenance):
root does not believe a record another user wrote beside a bundle, nor one reached through a
link, and no name in a record can add to or break the comment."""
from __future__ import annotations

import json
import os

import pytest

from conftest import sh
from security.conftest import PEER, uid_of


def plant_podman_storage(tmp_path, cid: str, make_bundle, how: str):
    """A bundle where podman keeps one (<storage>/overlay-containers/<id>/userdata), with
    containers.json and images.json that name a hostile image; `how`: who wrote them."""
    storage = tmp_path / f"storage-{how}"
    containers = storage / "overlay-containers"
    (containers / cid).mkdir(parents=True)
    bundle = make_bundle(["sleep", "30"], name="userdata", under=containers / cid)
    images = storage / "overlay-images"
    images.mkdir()
    (images / "images.json").write_text(json.dumps(
        [{"id": "i1", "names": ["evil; touch /tmp/x $(id)"], "digest": "sha256:0123"}]))
    record = json.dumps([{"id": cid, "image": "i1"}])
    if how == "symlink":  # root's own file, but reached through a link
        (tmp_path / "elsewhere.json").write_text(record)
        (containers / "containers.json").symlink_to(tmp_path / "elsewhere.json")
    else:
        (containers / "containers.json").write_text(record)
    if how == "peer":
        for path in (containers, containers / "containers.json", images, images / "images.json"):
            os.chown(path, uid_of(PEER), uid_of(PEER))
    return bundle


def comment_of(scrun, cid: str) -> str:
    job = scrun.record(cid)["job_id"]
    out = sh(["scontrol", "--oneliner", "show", "job", str(job)]).stdout
    return out.split(" Comment=", 1)[1]


@pytest.mark.parametrize("how", ["root", "peer", "symlink"])
def test_only_the_callers_own_records_name_the_image(slurm_cluster, scrun, make_bundle, tmp_path, how):
    cid = scrun.new_id()
    bundle = plant_podman_storage(tmp_path, cid, make_bundle, how)
    assert scrun.create(cid, bundle).returncode == 0
    try:
        comment = comment_of(scrun, cid)
        if how == "root":  # the control: root's own records are read, and the name is made harmless
            assert "image=evil__touch_/tmp/x___id_@sha256:0123 engine=podman scrun=" in comment, comment
            assert scrun.record(cid)["image"] == "evil__touch_/tmp/x___id_"
        else:
            assert "; image=unknown engine=podman scrun=" in comment, comment
            assert scrun.record(cid)["image"] == ""
        assert not os.path.exists("/tmp/x")
    finally:
        assert scrun("delete", "--force", cid).returncode == 0
