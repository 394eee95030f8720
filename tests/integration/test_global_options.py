"""Every global option with every verb, repeatedly: the debugging combination an admin uses
(`--debug --log F --log-format json`, which containerd also passes minus --debug) once failed
half the cycles — the forked anchor wrote create's log into reused fds."""
import json

import pytest

from conftest import jobs_named, wait_for

ROUNDS = 4


def option_sets(log, conf):
    return {
        "debug-log-json": ("--debug", "--log", str(log), "--log-format", "json"),
        "debug-log-text": ("--debug", "--log", str(log), "--log-format", "text"),
        "v-v-log": ("-v", "-v", "--log", str(log)),
        "debug": ("--debug",),
        "log-json": ("--log", str(log), "--log-format", "json"),
        "conf-and-ignored": ("-f", str(conf), "--systemd-cgroup", "--rootless", "false", "--cgroup-manager", "cgroupfs"),
        "everything": ("--debug", "-v", "-f", str(conf), "--log", str(log), "--log-format", "json", "--systemd-cgroup",
                       "--rootless=true"),
    }


@pytest.mark.parametrize("name", ["debug-log-json", "debug-log-text", "v-v-log", "debug", "log-json", "conf-and-ignored",
                                  "everything"])
def test_every_verb_with_global_options(scrun, make_bundle, tmp_path, name):
    log = tmp_path / "oci.log"
    options = option_sets(log, "/etc/slurm/slurm.conf")[name]
    bundle = make_bundle(["sh", "-c", "sleep 0.2; exit 3"])
    for _ in range(ROUNDS):
        cid = scrun.new_id()
        created = scrun.create(cid, bundle, global_args=options)
        assert created.returncode == 0, created.stderr
        state = scrun("state", cid, global_args=options)
        assert state.returncode == 0 and json.loads(state.stdout)["status"] == "created", state.stderr
        assert scrun("start", cid, global_args=options).returncode == 0
        assert scrun("kill", cid, "CONT", global_args=options).returncode in (0, 1)  # 1: already stopped
        record = scrun.wait_stopped(cid)
        assert record["exit_code"] == 3, record
        listed = scrun("list", "--format", "json", global_args=options)
        assert listed.returncode == 0 and cid in listed.stdout, listed.stderr
        deleted = scrun("delete", cid, global_args=options)
        assert deleted.returncode == 0, deleted.stderr
        assert not (scrun.root / cid).exists()
    if "json" in options:
        for line in log.read_text().splitlines():
            doc = json.loads(line)  # every line whole, nothing of anyone else's in between
            assert set(doc) == {"level", "msg", "time"}, doc
    elif log.exists():
        lines = log.read_text().splitlines()
        assert lines and all(line.startswith("[20") for line in lines), lines[:5]
    wait_for(lambda: not jobs_named([f"scrun:{c[:12]}" for c in scrun.ids]), 30, "the jobs to end")
