"""exec's command on the node, from oci.conf's RunTimeQuery (pure)."""
import pytest

from scrun.core.nodeexec import ExecProcess, expand_oci_pattern, node_exec_command, process_from_spec
from scrun.errors import InvalidInputError

pytestmark = pytest.mark.unit

QUERY = "test -d /run/crun-slurm/%u && crun --root=/run/crun-slurm/%u state %n-%j-%s-%t"
VALUES = {"n": "n1", "j": "12", "s": "0", "t": "0", "u": "alice", "U": "1000"}


def test_the_query_becomes_an_exec_of_the_same_container():
    process = ExecProcess(("sh", "-c", "echo in; exit 4"), ("A=1 2",), "/tmp", False, "")
    assert node_exec_command(QUERY, process, VALUES) == (
        "test -d /run/crun-slurm/alice && crun --root=/run/crun-slurm/alice exec --cwd=/tmp '--env=A=1 2' n1-12-0-0 "
        "sh -c 'echo in; exit 4'")


def test_user_becomes_a_flag_and_a_terminal_none():
    # The terminal is the srun --pty step's own (cli/exec.py); crun's --tty would add a second.
    process = ExecProcess(("sh",), (), "", True, "1000:100")
    assert node_exec_command("crun state %n.%u.%j.%s.%t 100%%", process, VALUES) == (
        "crun exec --user=1000:100 n1.alice.12.0.0 100% sh")


def test_without_a_query_exec_says_what_to_add():
    with pytest.raises(InvalidInputError, match="RunTimeQuery"):
        node_exec_command(None, ExecProcess(("true",), (), "", False, ""), VALUES)


def test_unknown_patterns_stay():
    assert expand_oci_pattern("%b %x %", VALUES) == "%b %x %"


@pytest.mark.parametrize("doc, error", [
    ([], "JSON object"), ({"args": []}, "args"), ({"args": ["a", 1]}, "args"), ({"args": ["a"], "env": ["NOEQ"]}, "env"),
    ({"args": ["a"], "cwd": "rel"}, "cwd"), ({"args": ["a"], "user": {"uid": -1}}, "user.uid"),
    ({"args": ["a"], "user": {"uid": True}}, "user.uid"),
])
def test_bad_process_specs_are_refused(doc, error):
    with pytest.raises(InvalidInputError, match=error):
        process_from_spec(doc, "p.json")


def test_a_podman_process_spec():
    doc = {"terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "env": ["PATH=/bin", "TERM=xterm"],
           "cwd": "/", "capabilities": {}, "noNewPrivileges": False}
    assert process_from_spec(doc, "p") == ExecProcess(("sh",), ("PATH=/bin", "TERM=xterm"), "/", True, "0:0")
