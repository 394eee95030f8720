"""The bad-input corpus (tests/data/bad-input.jsonl) through the real CLI against the real cluster.

Every case: exit status non-zero, exactly one `scrun: error:` line that names the problem (the
case's `expect` is part of it), no traceback, and nothing left behind — no state directory or
socket under --root, no job, no anchor process.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from conftest import live_anchors, sh

pytestmark = pytest.mark.integration
CORPUS = pathlib.Path(__file__).resolve().parents[1] / "data" / "bad-input.jsonl"
# Other lines a failing call may print besides its error: argparse's usage, a Lua script's own log,
# the allocation's progress (as salloc prints it).
ALLOWED_OTHER = re.compile(r"^(usage: |\s|scrun: lua: |scrun: job \d+ )")


def load_corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip() and not line.startswith("#")]


CASES = load_corpus()


def test_the_corpus_is_large_and_its_names_unique():
    names = [case["name"] for case in CASES]
    assert len(names) >= 150 and len(set(names)) == len(names)
    assert all(case.get("expect") is not None for case in CASES)


def set_field(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    if value == {"$delete": True}:
        doc.pop(last, None)
    else:
        doc[last] = value


def prepare_bundle(kind: str, bundle: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    config = bundle / "config.json"
    if kind == "missing":
        return tmp_path / "missing"
    if kind == "file":
        (tmp_path / "file").write_text("not a bundle")
        return tmp_path / "file"
    if kind != "rootfs-dangling":
        config.unlink()
    if kind == "config-dir":
        config.mkdir()
    elif kind == "config-loop":
        config.symlink_to(config)
    elif kind == "config-dangling":
        config.symlink_to("/nonexistent/config.json")
    elif kind == "config-latin1":
        config.write_bytes(b'{"ociVersion": "1.0.2", "x": "\xe9"}')
    elif kind == "config-huge":
        config.write_bytes(b"x" * (5 << 20))
    elif kind == "rootfs-dangling":
        (bundle / "rootfs").symlink_to("/nonexistent/rootfs")
        doc = json.loads(config.read_text())
        doc["root"]["path"] = "rootfs"
        config.write_text(json.dumps(doc))
    elif kind != "no-config":
        raise AssertionError(f"unknown bundle fault {kind}")
    return bundle


def prepare_conf(kind: str, conf_dir: pathlib.Path, env: dict) -> None:
    if kind == "slurm-conf-dir":
        (conf_dir / "as-dir").mkdir()
        env["SLURM_CONF"] = str(conf_dir / "as-dir")
    elif kind == "dead-controller":
        text = (conf_dir / "slurm.conf").read_text()
        text = re.sub(r"(?mi)^SlurmctldPort=.*$", "", text) + "\nSlurmctldPort=1\n"  # nobody listens there
        (conf_dir / "slurm.conf").write_text(text)
    elif kind == "lua-dir":
        (conf_dir / "scrun.lua").mkdir()
    else:
        raise AssertionError(f"unknown conf fault {kind}")


def anchors() -> set[int]:
    return set(live_anchors())


def job_ids() -> set[str]:
    return set(sh(["squeue", "-h", "-o", "%i"]).stdout.split())


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_bad_input_is_named_and_leaves_nothing(slurm_cluster, make_bundle, conf_dir, tmp_path, case):
    root = tmp_path / "root"
    bundle = make_bundle(["true"])
    doc = json.loads((bundle / "config.json").read_text())
    for field, value in case.get("config", {}).items():
        set_field(doc, field, value)
    (bundle / "config.json").write_text(json.dumps(doc))
    if "config_text" in case:
        (bundle / "config.json").write_text(case["config_text"])
    if "bundle" in case:
        bundle = prepare_bundle(case["bundle"], bundle, tmp_path)
    env = {**os.environ, "SLURM_CONF": str(conf_dir / "slurm.conf")}  # not the site's scrun.lua
    for key in [k for k in env if k.startswith(("SCRUN_", "SLURM_JOB"))]:
        del env[key]
    env.update(case.get("env", {}))
    if "conf" in case:
        prepare_conf(case["conf"], conf_dir, env)
    if "oci_conf" in case:
        with open(conf_dir / "oci.conf", "a") as fh:
            fh.write(case["oci_conf"] + "\n")
    if "lua" in case:
        (conf_dir / "scrun.lua").write_text(case["lua"])
    cid = case.get("id", f"bad{os.urandom(6).hex()}")
    argv = case.get("argv")
    if argv is None:
        argv = ["create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), cid]
    else:
        argv = [a.replace("{id}", cid).replace("{bundle}", str(bundle)) for a in argv]

    jobs_before, anchors_before = job_ids(), anchors()
    began = time.monotonic()
    # Files, not pipes: a create that wrongly succeeds hands them to its anchor, which keeps them.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.run([sys.executable, "-m", "scrun", "--root", str(root), *argv], stdout=out, stderr=err,
                              env=env, stdin=subprocess.DEVNULL, timeout=120)
    proc.stdout, proc.stderr = out_path.read_text(), err_path.read_text()
    took = time.monotonic() - began
    if proc.returncode == 0 and root.exists():
        for leftover in root.iterdir():  # accepted: clean up before failing the case
            subprocess.run([sys.executable, "-m", "scrun", "--root", str(root), "delete", "--force", leftover.name],
                           env=env, capture_output=True, timeout=60)

    assert proc.returncode != 0, f"accepted: {proc.stdout!r} {proc.stderr!r}"
    assert proc.stdout == "", "stdout is the engines' API: errors never go there"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("scrun: error: ")]
    assert len(errors) == 1, proc.stderr
    assert case["expect"] in errors[0], errors[0]
    assert all(ALLOWED_OTHER.match(line) for line in lines if line not in errors), proc.stderr
    assert took < 60, f"{took:.0f}s to refuse"

    assert not root.exists() or list(root.iterdir()) == [], list(root.iterdir())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (anchors() - anchors_before or job_ids() - jobs_before):
        time.sleep(0.2)
    assert anchors() - anchors_before == set(), "an anchor outlived its failed call"
    assert job_ids() - jobs_before == set(), "a job outlived its failed call"
