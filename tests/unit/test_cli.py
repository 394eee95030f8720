"""Command-line grammar (runc compatible), --version shape, exit codes, stdout purity."""
import json
import re
import subprocess
import sys

import pytest

from conftest import SEED
from scrun import OCI_SPEC_VERSION
from scrun.cli.args import parse_command_line
from scrun.errors import UsageError

pytestmark = pytest.mark.unit


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "scrun", *args], capture_output=True, text=True, **kw)


def test_version_matches_what_docker_and_podman_parse():
    for flag in ("--version", "-V"):
        proc = run_cli(flag)
        assert proc.returncode == 0 and proc.stderr == ""
        lines = proc.stdout.splitlines()
        assert re.fullmatch(r"scrun version \d+\.\d+\.\d+", lines[0])
        assert lines[1].startswith("commit: ") and lines[2] == f"spec: {OCI_SPEC_VERSION}"
        assert lines[3].startswith("slurm: ") and len(lines) == 4, "the Slurm it finds (or why not), last"


@pytest.mark.parametrize("argv", [["--bogus", "state", "x"], ["frobnicate", "x"], [], ["kill"], ["state"],
                                  ["create", "--bundle"], ["create", "--preserve-fds=x", "c"], ["state", "a", "b"]])
def test_usage_errors_exit_2(argv):
    proc = run_cli(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "usage:" in proc.stderr and proc.stderr.startswith("scrun: error: ")


def test_help_lists_verbs():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for verb in ("create", "start", "state", "kill", "delete"):
        assert verb in proc.stdout


@pytest.mark.parametrize("argv,check", [
    (["--rootless", "state", "x"], lambda a: a.rootless is True and a.verb == "state"),
    (["--rootless", "false", "state", "x"], lambda a: a.rootless is False),
    (["--rootless=true", "kill", "x", "9"], lambda a: a.signal == "9"),
    (["--root=/r", "--log", "/l", "--log-format=json", "delete", "-f", "x"], lambda a: a.root == "/r" and a.force and a.log_format == "json"),
    (["kill", "-a", "x", "KILL"], lambda a: a.all and a.signal == "KILL"),
    (["kill", "--all", "x"], lambda a: a.all and a.signal == "SIGTERM"),
    (["create", "--preserve-fds", "3", "c"], lambda a: a.preserve_fds == 3 and a.id == "c"),
    (["create", "-b", "/b", "--pid-file", "/p", "--console-socket=/s", "--no-pivot", "--no-new-keyring", "c"],
     lambda a: (a.bundle, a.pid_file, a.console_socket, a.id) == ("/b", "/p", "/s", "c")),
    (["--systemd-cgroup", "--cgroup-manager", "disabled", "-v", "-v", "--debug", "-f", "/etc/x.conf", "start", "c"],
     lambda a: a.verbose == 2 and a.debug and a.slurm_conf == "/etc/x.conf"),
])
def test_runc_grammar(argv, check):
    assert check(parse_command_line(argv))


def test_unknown_verb_option_is_usage_error():
    with pytest.raises(UsageError):
        parse_command_line(["delete", "--bogus", "x"])


def test_runtime_error_is_exit_1_and_one_line(tmp_path):
    proc = run_cli("--root", str(tmp_path), "state", "nope")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_bad_debug_env_is_a_clear_error(tmp_path):
    proc = run_cli("--root", str(tmp_path), "state", "x", env={"SCRUN_DEBUG": "loud", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "SCRUN_DEBUG='loud'" in proc.stderr


@pytest.mark.parametrize("verb", ["ps", "update", "run", "checkpoint", "restore", "events", "spec"])
def test_other_runc_verbs_say_why_not(verb, tmp_path):
    proc = run_cli("--root", str(tmp_path), verb, "--process", "/p", "--detach", "c")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"scrun: error: `{verb}` is not supported by scrun: ") and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("verb", ["pause", "resume"])
def test_pause_and_resume_of_an_unknown_container(verb, tmp_path):
    proc = run_cli("--root", str(tmp_path), verb, "nosuch")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith("scrun: error: ") and "nosuch" in proc.stderr and proc.stderr.count("\n") == 1


def test_features_is_runtime_specs_document(tmp_path):
    """dockerd and containerd ask each runtime for it at start-up (dockerd warned without it)."""
    import json

    proc = run_cli("--root", str(tmp_path), "features")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.0.2"
    assert "poststop" in doc["hooks"] and "linux" not in doc  # the node's runtime decides: unknown here
    assert doc["annotations"]["org.slurm.scrun.version"]


def test_unknown_signal_is_one_clear_line(tmp_path):
    proc = run_cli("--root", str(tmp_path), "kill", "c1", "SIGFOO")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "scrun: error: unknown signal 'SIGFOO': use a name like TERM, SIGKILL or a number like 9\n"


@pytest.mark.skipif(not SEED.exists(), reason="shared/seed/scrun.1.txt is not next to the repository")
def test_every_output_variable_of_the_seed_is_set(tmp_path):
    import types

    from scrun.cli.create import _script_env
    from scrun.core.identity import Identity
    from scrun.core.bundle import parse_bundle_config
    from scrun.log import LogConfig

    section = SEED.read_text().split("Output Environment Variables", 1)[1].split("Job Output Environment Variables", 1)[0]
    documented = set(re.findall(r"^(SCRUN_[A-Z_]+\*?)$", section, re.M))
    assert len(documented) >= 19
    cfg = parse_bundle_config("/b", json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                                                 "process": {"args": ["sh"]}, "annotations": {"org.example": "v"}}))
    # Rootless podman: uid 0 inside the namespace is the real uid 4321 outside; the seed wants the real one.
    identity = Identity(uid=0, gid=0, real_uid=4321, real_gid=4322, in_user_namespace=True)
    settings = types.SimpleNamespace(identity=identity, root="/run/scrun", log=LogConfig(log_file="/l", log_format="json"))
    env = _script_env(settings, "c1", cfg, "/p", "/run/scrun/c1", 4242)
    assert env["SCRUN_USER_ID"] == "4321" and env["SCRUN_GROUP_ID"] == "4322"
    for name in documented:
        if name.endswith("*"):
            assert any(k.startswith(name[:-1]) for k in env), name
        else:
            assert name in env, name
    assert env["SCRUN_PID"] == "4242" and env["SCRUN_ANNOTATION_org.example"] == "v"


def test_exec_into_a_container_that_does_not_exist(tmp_path):
    proc = run_cli("--root", str(tmp_path), "exec", "nope", "true")
    assert proc.returncode == 1 and proc.stdout == "" and "does not exist" in proc.stderr and proc.stderr.count("\n") == 1
