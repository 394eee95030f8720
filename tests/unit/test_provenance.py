"""core.provenance: where each engine keeps the image of a container, and what reaches the comment."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scrun.core import provenance
from scrun.slurm.argv import JOB_COMMENT_PREFIX, build_salloc_argv, job_comment
from scrun.slurm.parse import parse_own_jobs

CID = "4a0d53a0aaeb9edbd1dcbbcc5aee9299a850142bab66af93da52497e4eedaa2b"


def test_podmans_bundle_names_its_storage():
    bundle = f"/var/lib/containers/storage/overlay-containers/{CID}/userdata"
    assert provenance.record_source(bundle, CID, ()) == (
        "podman", "/var/lib/containers/storage/overlay-containers/containers.json")
    assert provenance.podman_images_file("/s/overlay-containers/containers.json") == "/s/overlay-images/images.json"
    # another container's directory, or a bundle that only looks like one, names nothing
    assert provenance.record_source(f"/var/lib/containers/storage/overlay-containers/{CID}/userdata", "other", ()) is None
    assert provenance.record_source("/home/u/bundle", CID, ()) is None


def test_dockers_hostname_bind_names_its_container_directory():
    binds = (("/etc/resolv.conf", f"/var/lib/docker/containers/{CID}/resolv.conf"),
             ("/etc/hostname", f"/var/lib/docker/containers/{CID}/hostname"))
    bundle = f"/run/containerd/io.containerd.runtime.v2.task/moby/{CID}"
    assert provenance.record_source(bundle, CID, binds) == ("docker", f"/var/lib/docker/containers/{CID}/config.v2.json")
    assert provenance.record_source(bundle, CID, (("/etc/hostname", "/tmp/evil/hostname"),)) is None
    assert provenance.record_source(bundle, CID, (("/etc/hosts", f"/x/containers/{CID}/hostname"),)) is None


def test_podman_records_give_the_images_name_and_digest():
    containers = [{"id": "other", "image": "bad"}, {"id": CID, "image": "img1", "layer": "l1"}]
    images = [{"id": "img0", "names": ["localhost/x:1"]},
              {"id": "img1", "names": ["localhost/debian-python:latest", "alias:2"], "digest": "sha256:ab12"}]
    assert provenance.podman_image_id(containers, CID) == "img1"
    assert provenance.podman_image(images, "img1") == ("localhost/debian-python:latest", "sha256:ab12")
    assert provenance.podman_image([{"id": "img1"}], "img1") == ("img1", "")  # an image without a name: its id
    assert provenance.podman_image_id({"not": "a list"}, CID) == "" and provenance.podman_image(None, "img1") == ("", "")
    assert provenance.podman_image_id([{"id": CID, "image": 7}], CID) == ""


def test_docker_record_gives_the_image_as_named_and_its_id():
    doc = {"Config": {"Image": "localhost/busybox"}, "Image": "sha256:0123"}
    assert provenance.docker_image(doc) == ("localhost/busybox", "sha256:0123")
    assert provenance.docker_image({"Config": "x"}) == ("", "") and provenance.docker_image([]) == ("", "")


def test_the_description_and_the_comment_it_ends():
    text = provenance.describe("podman", "localhost/busybox:latest", "sha256:ab", "0.4.0")
    assert text == "image=localhost/busybox:latest@sha256:ab engine=podman scrun=0.4.0"
    assert provenance.describe("", "", "", "0.4.0") == "image=unknown engine=unknown scrun=0.4.0"
    assert provenance.describe("docker", "x", "sha256:1", "v").startswith("image=x@sha256:1 ")
    comment = job_comment("c0ffee", "login1:/run/scrun", text)
    assert comment == f"scrun:c0ffee login1:/run/scrun; {text}"
    assert build_salloc_argv("salloc", (), "n", comment)[2] == f"--comment={comment}"
    # the orphan search still finds the container by its place, whatever follows
    found = parse_own_jobs(f"12|RUNNING|None|n1|{comment}\n", JOB_COMMENT_PREFIX, "login1:/run/scrun")
    assert list(found) == ["c0ffee"]
    assert parse_own_jobs(f"12|RUNNING|None|n1|{comment}\n", JOB_COMMENT_PREFIX, "login2:/run/scrun") == {}


@given(st.text(max_size=400))
def test_nothing_an_image_name_holds_can_break_the_comment(name):
    cleaned = provenance.clean(name)
    assert len(cleaned) <= 200 and not any(c in cleaned for c in " ;|\"'\n\r\t\\$`")
    text = provenance.describe("podman", name, "", "v")
    assert text.split(" ")[1:] == ["engine=podman", "scrun=v"], "a name never adds or hides a field"
