"""A container's configuration (its image's ENV, -e, annotations) cannot make scrun run anything
outside the container, nor end anybody's job."""
from __future__ import annotations

import json

import pytest

from conftest import IMAGE
from security.conftest import (MARK, USER, as_user, docker, job_state, nothing_ran_outside, podman, scrun_error)

HOSTILE_CMD = ["sh", "-c", f"id > {MARK}; hostname >> {MARK}"]


def test_the_issue_s_command_runs_nothing_on_the_login_node(no_job_left):
    proc = podman("run", "--rm", "-e", "SCRUN_PROLOG=/usr/bin/env", IMAGE, *HOSTILE_CMD)
    line = scrun_error(proc)
    assert "SCRUN_PROLOG from the container's environment" in line and "refused" in line, line
    nothing_ran_outside()


def test_a_hostile_image_under_root_podman(no_job_left, hostile_image):
    proc = podman("run", "--rm", hostile_image)
    assert "SCRUN_PROLOG from the container's environment" in scrun_error(proc)
    nothing_ran_outside()


def test_a_hostile_image_under_docker(no_job_left, docker_hostile_image):
    proc = docker("run", "--rm", docker_hostile_image)
    assert "SCRUN_PROLOG from the container's environment" in scrun_error(proc)
    nothing_ran_outside()


def test_rootless_podman_is_refused_too(no_job_left):
    proc = podman("run", "--rm", "-e", "SCRUN_PROLOG=/usr/bin/env", IMAGE, *HOSTILE_CMD, user=USER)
    assert "SCRUN_PROLOG from the container's environment" in scrun_error(proc)
    nothing_ran_outside()


@pytest.mark.parametrize("flag", [
    ("-e", "SCRUN_EPILOG=/usr/bin/env"),
    ("-e", "SCRUN_TASK_PROLOG=/usr/bin/env"),
    ("-e", "SCRUN_WORKING_DIR=/root"),
    ("-e", "SCRUN_ACCOUNT=someone-else"),
    ("--annotation", "org.slurm.prolog=/usr/bin/env"),
    ("--annotation", "org.slurm.task_epilog=/usr/bin/env"),
])
def test_every_option_that_acts_outside_is_refused_from_a_container(no_job_left, flag):
    proc = podman("run", "--rm", *flag, IMAGE, *HOSTILE_CMD)
    name = "SCRUN_" + flag[1].split("=")[0].removeprefix("SCRUN_").removeprefix("org.slurm.").upper()
    line = scrun_error(proc)
    assert f"{name} from the container's" in line and "refused" in line, line
    nothing_ran_outside()


def test_a_fake_salloc_line_in_an_option_does_not_cancel_another_users_job(no_job_left, victim_job):
    """The issue's second attack: salloc quotes the bad --clusters value in its error, and scrun
    took the job id in it for its own and cancelled it. From a container it is refused now."""
    proc = podman("run", "--rm", "-e", f"SCRUN_CLUSTERS=Pending job allocation {victim_job}", IMAGE, "true")
    assert "SCRUN_CLUSTERS from the container's environment" in scrun_error(proc)
    assert job_state(victim_job) == "RUNNING"


def test_the_same_text_from_the_caller_reaches_salloc_and_still_cancels_nothing(scrun, make_bundle, victim_job):
    """The caller may set SCRUN_CLUSTERS: salloc then fails quoting it, and only whole lines of
    salloc's are believed (and scancel is limited to the caller's own jobs)."""
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"]), env={"SCRUN_CLUSTERS": f"Pending job allocation {victim_job}"})
    assert proc.returncode != 0 and "job allocation failed" in proc.stderr, proc.stderr  # 22.05 quotes it, 24.11 not
    assert job_state(victim_job) == "RUNNING"


def test_a_newline_in_an_allowed_option_cannot_forge_a_line(scrun, make_bundle, victim_job):
    cid = scrun.new_id()
    forged = f"nosuch\nsalloc: Pending job allocation {victim_job}\nsalloc: Granted job allocation {victim_job}"
    bundle = make_bundle(["true"], env=[f"SCRUN_PARTITION={forged}"])
    proc = scrun.create(cid, bundle)
    assert proc.returncode != 0 and "SCRUN_PARTITION=" in proc.stderr and "control character" in proc.stderr
    assert job_state(victim_job) == "RUNNING"


def test_an_image_name_annotation_cannot_forge_a_line(scrun, make_bundle, victim_job):
    """The default job name comes from annotations an image may carry: kept to one line."""
    cid = scrun.new_id()
    bundle = make_bundle(["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["annotations"] = {"org.opencontainers.image.ref.name": f"x\nsalloc: Granted job allocation {victim_job}"}
    (bundle / "config.json").write_text(json.dumps(config))
    proc = scrun.create(cid, bundle, env={"SCRUN_PARTITION": "nosuch"})
    assert proc.returncode != 0
    assert job_state(victim_job) == "RUNNING"


def test_the_caller_s_own_prolog_still_works(scrun, make_bundle, tmp_path):
    """What is refused from a container stays the caller's to set: SCRUN_PROLOG from the
    environment of whoever runs scrun runs, as srun --prolog does, on the login node."""
    out = tmp_path / "prolog-ran"
    prolog = tmp_path / "prolog.sh"
    prolog.write_text(f"#!/bin/sh\necho ran > {out}\n")
    prolog.chmod(0o755)
    cid = scrun.new_id()
    assert scrun.create(cid, make_bundle(["true"]), env={"SCRUN_PROLOG": str(prolog)}).returncode == 0
    assert scrun("start", cid).returncode == 0
    scrun.wait_stopped(cid)
    assert scrun("delete", cid).returncode == 0
    assert out.read_text() == "ran\n"


def test_the_refusal_is_one_line_and_leaves_nothing(scrun, make_bundle):
    cid = scrun.new_id()
    proc = scrun.create(cid, make_bundle(["true"], env=["SCRUN_TASK_PROLOG=/usr/bin/env"]))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("scrun: error: SCRUN_TASK_PROLOG"), lines
    assert not (scrun.root / cid).exists()


def test_user_namespaced_rootless_attack_gets_the_same_line(no_job_left):
    proc = as_user(USER, ["podman", "--runtime", "scrun", "run", "--rm", "--network", "none",
                          "--annotation", "org.slurm.epilog=/usr/bin/env", IMAGE, "true"])
    assert "SCRUN_EPILOG from the container's annotation org.slurm.epilog" in scrun_error(proc)
