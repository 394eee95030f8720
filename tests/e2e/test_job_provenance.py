"""Provenance (issue 31): the job of a podman or docker container says afterwards which image ran,
through which engine and which scrun (its comment, as `scontrol show job` and sacct show it), and
`scrun list` shows the image."""
import glob
import json
import shutil
import subprocess

import pytest

from conftest import IMAGE, require, sh, wait_for
from scrun import __version__

pytestmark = pytest.mark.e2e
DOCKER = "/usr/bin/docker" if shutil.which("/usr/bin/docker") else "docker"


def job_comment_of(cid: str) -> tuple[str, str]:
    """(job id, comment) of the container's job, found by the id the comment starts with."""
    def find():
        for line in sh(["squeue", "-h", "-o", "%i|%k"]).stdout.splitlines():
            job, _, comment = line.partition("|")
            if comment.startswith(f"scrun:{cid} "):
                return job, comment
        return None
    return wait_for(find, 60, f"the job of {cid[:12]}")


def scontrol_comment(job: str) -> str:
    """The Comment= field of `scontrol show job` (its own line, the comment may hold spaces)."""
    out = sh(["scontrol", "show", "job", job]).stdout
    return next((line.strip()[len("Comment="):] for line in out.splitlines() if line.strip().startswith("Comment=")), out)


def engine_cli(engine: str) -> list[str]:
    if engine == "podman":
        return ["podman", "--runtime", "scrun"]
    require(shutil.which(DOCKER) is not None and subprocess.run([DOCKER, "image", "inspect", IMAGE],
                                                                capture_output=True).returncode == 0,
            f"dockerd is not running or has no {IMAGE} (tools/devcluster.py up)")
    return [DOCKER]


def image_digest(engine: str) -> str:
    """What the engine itself calls the image's digest (podman) or id (docker)."""
    fmt = "{{.Digest}}" if engine == "podman" else "{{.Id}}"
    return sh([*engine_cli(engine), "image", "inspect", "--format", fmt, IMAGE]).stdout.strip()


def listed_image(engine: str, cid: str) -> str:
    roots = [] if engine == "podman" else ["--root", glob.glob(f"/run/docker/runtime-*/moby/{cid}")[0].rsplit("/", 1)[0]]
    rows = json.loads(sh(["scrun", *roots, "list", "--format", "json"]).stdout)
    return next(row["image"] for row in rows if row["id"] == cid)


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_the_job_says_which_image_ran(podman_ready, engine):
    cli = engine_cli(engine)
    run = [*cli, "run", "--runtime", "scrun"] if engine == "docker" else [*cli, "run"]
    proc = subprocess.run([*run, "-d", "--network", "none", IMAGE, "sleep", "60"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    cid = proc.stdout.strip().splitlines()[-1]
    try:
        job, comment = job_comment_of(cid)
        digest = image_digest(engine)
        assert digest.startswith("sha256:"), digest
        expected = f"image={IMAGE}@{digest} engine={engine} scrun={__version__}"
        assert comment.endswith(f"; {expected}"), comment
        assert scontrol_comment(job) == comment, "scontrol show job shows the same"
        assert listed_image(engine, cid) == IMAGE
    finally:
        subprocess.run([*cli, "rm", "-f", cid], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    wait_for(lambda: job not in sh(["squeue", "-h", "-o", "%i"]).stdout.split(), 60, f"job {job} to end")
