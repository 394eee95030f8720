"""Pure core logic: ids, signals, statuses, exit codes, time strings, bundle parsing."""
import json
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrun.core.bundle import parse_bundle_config
from scrun.core.exitcode import exit_code_from_returncode
from scrun.core.executable import check_executable
from scrun.core.ids import default_job_name, step_name_for, validate_container_id
from scrun.core.nodebundle import node_command, needs_rootfs_shim, shim_config
from scrun.core.signals import parse_signal
from scrun.core.status import Status, can_delete, can_kill, can_start
from scrun.core.timefmt import time_str2mins
from scrun.errors import InvalidInputError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cid", ["abc", "a.b", "A_b-c+d", "0" * 64, "..."])
def test_valid_ids(cid):
    assert validate_container_id(cid) == cid


@pytest.mark.parametrize("cid", ["", ".", "..", "a/b", "../x", "a b", "$#", "é", "a\nb", "x" * 1025])
def test_invalid_ids(cid):
    with pytest.raises(InvalidInputError):
        validate_container_id(cid)


@given(st.text())
def test_id_validation_never_lets_a_slash_through(text):
    try:
        validate_container_id(text)
    except InvalidInputError:
        return
    assert "/" not in text and text not in (".", "..")


@pytest.mark.parametrize("text,num", [
    ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), (" TERM ", 15), ("usr1", 10),
    ("WINCH", signal.SIGWINCH), ("SIGRTMIN+2", signal.SIGRTMIN + 2), ("64", 64), ("SEGV", 11),
])
def test_signal_grammar(text, num):
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["", "0", "65", "-9", "FOO", "SIGFOO", "9abc", "RTMIN+99", "SIG_DFL"])
def test_bad_signals(text):
    with pytest.raises(InvalidInputError):
        parse_signal(text)


def test_status_table_is_exhaustive():
    table = {
        Status.CREATING: (False, True, False),
        Status.CREATED: (True, True, True),
        Status.RUNNING: (False, True, False),
        Status.PAUSED: (False, True, False),
        Status.STOPPED: (False, False, True),
    }
    assert set(table) == set(Status.ALL)
    for status, (start, kill, delete) in table.items():
        assert (can_start(status), can_kill(status), can_delete(status)) == (start, kill, delete), status


@pytest.mark.parametrize("rc,code", [(0, 0), (1, 1), (3, 3), (255, 255), (-9, 137), (-15, 143), (-2, 130)])
def test_exit_codes(rc, code):
    assert exit_code_from_returncode(rc) == code


@pytest.mark.parametrize("text,mins", [
    ("90", 90), ("1:30", 2), ("1:00:00", 60), ("1-2", 1560), ("1-2:30", 1590), ("1-0:0:1", 1441),
    ("0", 0), ("INFINITE", -1), ("unlimited", -1), ("-1", -1), ("2-00:00:00", 2880),
    ("", -2), ("abc", -2), ("1-2-3", -2), ("1:2:3:4", -2), ("1:-2", -2), ("-5", -2), ("1:", -2), ("1-", -2),
])
def test_time_str2mins(text, mins):
    assert time_str2mins(text) == mins


def _config(**process):
    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
           "process": {"args": ["sh"], "env": ["A=1", "B=x=y"], "cwd": "/", **process},
           "annotations": {"k": "v", "n": 3}}
    return json.dumps(doc)


def test_bundle_config_parsed():
    cfg = parse_bundle_config("/b", _config(terminal=True, consoleSize={"height": 24, "width": 80}))
    assert cfg.root_path == "/b/rootfs" and cfg.args == ("sh",) and cfg.terminal
    assert cfg.env_dict() == {"A": "1", "B": "x=y"}
    assert cfg.annotations == {"k": "v", "n": "3"} and cfg.console_size == (24, 80)


@pytest.mark.parametrize("text,field", [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    (json.dumps({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": []}}), "process.args"),
    (json.dumps({"ociVersion": "1", "root": {"path": "r"}, "process": "sh"}), "process"),
    (json.dumps({"ociVersion": "1", "process": {"args": ["a"]}}), "root.path"),
    (json.dumps({"root": {"path": "r"}, "process": {"args": ["a"]}}), "ociVersion"),
    (json.dumps({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": ["a"], "terminal": "yes"}}), "process.terminal"),
    (json.dumps({"ociVersion": "1", "root": {"path": "r"}, "process": {"args": ["a"]}, "annotations": {"a": {}}}), "annotations.a"),
])
def test_bad_bundle_configs_name_the_field(text, field):
    with pytest.raises(InvalidInputError, match=field.replace(".", r"\.")):
        parse_bundle_config("/b", text)


def test_a_config_without_process_can_be_created():
    """runtime-spec: process is needed by `start` (which must then fail), not by `create`."""
    cfg = parse_bundle_config("/b", json.dumps({"ociVersion": "1", "root": {"path": "r"}}))
    assert cfg.args == () and cfg.env == () and cfg.terminal is False


def test_rootfs_shim_only_for_old_slurm():
    assert needs_rootfs_shim((22, 5, 8), "/b", "/var/lib/x/merged")
    assert not needs_rootfs_shim((22, 5, 8), "/b", "/b/rootfs")
    assert not needs_rootfs_shim((23, 2, 0), "/b", "/var/lib/x/merged")
    assert shim_config({"root": {"path": "/x", "readonly": True}, "a": 1}) == {"root": {"path": "rootfs", "readonly": True}, "a": 1}


def test_executable_lookup(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").symlink_to("/bin/busybox-that-only-exists-in-the-rootfs")
    check_executable(str(tmp_path), "sh", {"PATH": "/usr/bin:/bin"})
    check_executable(str(tmp_path), "/bin/sh", {})
    with pytest.raises(InvalidInputError, match="not found in \\$PATH"):
        check_executable(str(tmp_path), "nope", {"PATH": "/bin"})
    with pytest.raises(InvalidInputError, match="/nonexistent"):
        check_executable(str(tmp_path), "/nonexistent", {})
    check_executable(str(tmp_path / "missing-rootfs"), "anything", {})  # not local: the node decides


def test_a_command_from_a_bind_mount_is_judged_by_its_source(tmp_path):
    """docker binds /etc/hostname (0644 in /var/lib/docker) over its init layer's 0755 file:
    runc refuses to exec it (126). A tool directory bound onto PATH is searched too."""
    rootfs, host = tmp_path / "rootfs", tmp_path / "host"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hostname").write_text("")
    (rootfs / "etc" / "hostname").chmod(0o755)
    host.mkdir()
    (host / "hostname").write_text("abc\n")
    (host / "hostname").chmod(0o644)
    (host / "tools").mkdir()
    (host / "tools" / "mytool").write_text("#!/bin/sh\n")
    (host / "tools" / "mytool").chmod(0o755)
    binds = (("/etc/hostname", str(host / "hostname")), ("/opt/tools", str(host / "tools")))
    check_executable(str(rootfs), "/etc/hostname", {})  # the rootfs alone would let it pass
    with pytest.raises(InvalidInputError, match="permission denied"):
        check_executable(str(rootfs), "/etc/hostname", {}, binds=binds)
    check_executable(str(rootfs), "mytool", {"PATH": "/bin:/opt/tools"}, binds=binds)
    check_executable(str(rootfs), "/opt/tools/mytool", {}, binds=binds)
    with pytest.raises(InvalidInputError, match="not found"):
        check_executable(str(rootfs), "/opt/tools/missing", {}, binds=binds)


def test_bind_mounts_are_read_from_config_json():
    from scrun.core.bundle import bind_mounts

    doc = {"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                      {"destination": "/etc/hostname", "type": "bind", "source": "/d/hostname", "options": ["rbind", "ro"]},
                      {"destination": "/data/", "source": "/s", "options": ["bind"]}]}
    assert bind_mounts(doc) == (("/etc/hostname", "/d/hostname"), ("/data", "/s"))


def test_node_command_resolves_bare_names_in_the_rootfs_on_new_slurm(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").symlink_to("busybox")
    args = ("sh", "-c", "exit 3")
    # 24.11's srun would turn `sh` into the node's /usr/bin/sh: hand it the container's own path.
    assert node_command((24, 11, 5), args, str(tmp_path), {"PATH": "/usr/bin:/bin"}) == ("/bin/sh", "-c", "exit 3")
    assert node_command((22, 5, 8), args, str(tmp_path), {"PATH": "/usr/bin:/bin"}) == args
    assert node_command((24, 11, 5), ("/bin/sh",), str(tmp_path), {}) == ("/bin/sh",)
    assert node_command((24, 11, 5), ("nope",), str(tmp_path), {}) == ("nope",)  # crun will say so
    assert node_command((24, 11, 5), args, str(tmp_path / "elsewhere"), {}) == args  # rootfs not visible here


def test_names():
    assert step_name_for("abc") == "scrun:abc"
    assert default_job_name("0123456789abcdef", {}) == "scrun:0123456789ab"
    assert default_job_name("x", {"io.podman.annotations.container.name": "web"}) == "scrun:web"


from scrun.core.stderrfilter import StderrFilter  # noqa: E402


@pytest.mark.parametrize("line", [
    b"srun: error: n1: task 0: Exited with exit code 3\n",
    b"srun: error: n2: tasks 0-1: Killed\n",
    b"srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n",
    b"slurmstepd-n1: error: *** STEP 6.0 ON n1 CANCELLED AT 2026-11-25T06:13:31 ***\n",
    b"slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-11-25T06:13:31 DUE TO TIME LIMIT ***\n",
])
def test_srun_status_lines_are_dropped(line):
    f = StderrFilter()
    assert f.feed(b"before\n" + line + b"after\n") + f.flush() == b"before\nafter\n"


def test_real_errors_and_partial_prompts_pass():
    f = StderrFilter()
    assert f.feed(b"srun: error: Unable to create step for job 5: Invalid\n") == b"srun: error: Unable to create step for job 5: Invalid\n"
    assert f.feed(b"Password: ") == b"Password: "  # not held back: it cannot become srun noise
    assert f.feed(b"x\nsru") == b"x\n"
    assert f.feed(b"n: hello\n") == b"srun: hello\n"


# What `srun --verbose` prints around a container step (22.05, then 24.11's spelling).
VERBOSE_22_05 = (b"srun: defined options\nsrun: -------------------- --------------------\n"
                 b"srun: container           : /b\nsrun: jobid 10365: nodes(1):`n1', cpu counts: 1(x1)\n"
                 b"srun: launch/slurm: launch_p_step_launch: CpuBindType=(null type)\n"
                 b"srun: launching StepId=10365.0 on host n1, 1 tasks: 0\n"
                 b"srun: launch/slurm: _task_start: Node n1, 1 tasks started\n")
VERBOSE_24_11 = (b"srun: CpuBindType=(null type)\nsrun: launching StepId=1.0 on host n1, 1 tasks: 0\n"
                 b"srun: topology/default: init: topology Default plugin loaded\nsrun: Node n1, 1 tasks started\n")


@pytest.mark.parametrize("verbose", [VERBOSE_22_05, VERBOSE_24_11], ids=["22.05", "24.11"])
def test_verbose_srun_says_when_the_tasks_run_and_nothing_of_it_reaches_the_container(verbose):
    f = StderrFilter(srun_verbose=True)
    out = f.feed(verbose[:17])  # in pieces, as a pipe delivers it
    assert not f.tasks_started
    out += f.feed(verbose[17:] + b"container says\nsrun: error: n1: task 0: Exited with exit code 3\n"
                  b"srun: error: Unable to create step for job 5: Invalid\nsrun: warning: careful\n") + f.flush()
    assert f.tasks_started
    assert out == b"container says\nsrun: error: Unable to create step for job 5: Invalid\nsrun: warning: careful\n"


@pytest.mark.parametrize("verbose", [VERBOSE_22_05, VERBOSE_24_11], ids=["22.05", "24.11"])
def test_verbose_srun_names_the_step_it_launches_once(verbose):
    f = StderrFilter(srun_verbose=True)
    f.feed(verbose[:60])
    assert f.step_id is None
    f.feed(verbose[60:] + b"srun: launching StepId=9.7 on host n2, 1 tasks: 0\n")  # the first one counts
    assert f.step_id == "0"


@pytest.mark.parametrize("verbose", [VERBOSE_22_05, VERBOSE_24_11], ids=["22.05", "24.11"])
def test_once_the_step_launches_a_containers_own_srun_looking_lines_pass(verbose):
    f = StderrFilter(srun_verbose=True)
    before, after = verbose.split(b"srun: launching", 1)
    mine = b"srun: mine, before srun says the tasks started\nsrun: First task exited, says the container\n"
    out = f.feed(b"srun: jobid 7: nodes(1):`n1', cpu counts: 1(x1)\n" + before + b"srun: launching" + after)
    out += f.feed(b"srun: launching StepId=7.0 on host n2, 1 tasks: 1\nsrun: Node n2, 1 tasks started\n")  # a second node
    out += f.feed(mine + b"srun: route/default: init: route default plugin loaded\n" + EXIT_24_11 +
                  b"srun: First task exited. Terminating job in 10s\nsrun: n1: task 0: Completed\n") + f.flush()
    assert (out, f.step_id, f.tasks_started) == (mine, "0", True)


def test_no_step_is_learnt_without_verbose():
    f = StderrFilter()
    f.feed(VERBOSE_22_05)
    assert f.step_id is None


def test_without_verbose_srun_info_lines_still_pass_and_nothing_is_said_started():
    f = StderrFilter()
    assert f.feed(VERBOSE_24_11) == VERBOSE_24_11
    assert not f.tasks_started


EXIT_24_11 = b"srun: Received task exit notification for 1 task of StepId=235.0 (status=0x0000).\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_srun_lines_glued_to_a_container_line_without_newline_are_cut_off(verbose):
    """`printf out; printf err >&2`: the container's stderr ends without a newline, and srun's
    own line follows it: in the same read, or in the next one. The container's bytes arrive exactly."""
    f = StderrFilter(srun_verbose=verbose)
    assert f.feed(b"err" + b"srun: error: n1: task 0: Exited with exit code 3\n") + f.flush() == b"err"
    f = StderrFilter(srun_verbose=verbose)
    assert f.feed(b"err") + f.feed(b"srun: error: n1: task 0: Exited with exit code 3\n") + f.flush() == b"err"
    f = StderrFilter(srun_verbose=True)
    assert f.feed(b"err") + f.feed(EXIT_24_11) + f.flush() == b"err"
    f = StderrFilter(srun_verbose=True)
    assert f.feed(b"err" + EXIT_24_11) + f.flush() == b"err"
    f = StderrFilter()
    assert f.feed(b"x") + f.feed(b"slurmstepd: error: *** STEP 6.0 ON n1 CANCELLED AT 2026-11-25T06:13:31 ***\n") == b"x"
    assert f.step_cancelled
    # The container's last bytes are themselves `srun: ` (found by the e2e property test on 24.11):
    # with srun's line after them, the whole line starts like srun's, and was dropped whole.
    for split in (False, True):
        f = StderrFilter(srun_verbose=True)
        out = (f.feed(b"srun: ") + f.feed(EXIT_24_11)) if split else f.feed(b"srun: " + EXIT_24_11)
        assert out + f.flush() == b"srun: "


def test_text_like_srun_inside_a_container_line_is_kept():
    f = StderrFilter(srun_verbose=True)
    data = b"see srun: the manual\nwhy srun: error: n1: task 0: Exited with exit code 3 and more\n"
    assert f.feed(data) + f.flush() == data
    f = StderrFilter(srun_verbose=True)
    assert f.feed(b"abc") + f.feed(b"srun: a line the container writes\n") + f.flush() == b"abc"  # srun's by its shape
    f = StderrFilter()
    assert f.feed(b"abc") + f.feed(b"srun: a line the container writes\n") + f.flush() == \
        b"abcsrun: a line the container writes\n"  # not an exact status line: the container's


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_filter_is_byte_exact_without_noise(chunks):
    data = b"".join(chunks)
    if b"srun: " in data or b"slurmstepd" in data:
        return
    f = StderrFilter()
    assert b"".join(f.feed(c) for c in chunks) + f.flush() == data


# --- identity inside rootless podman's user namespace -------------------------------------------

def test_id_maps_parse_and_translate():
    from scrun.core.identity import parse_id_map, to_outside

    podman = parse_id_map("         0       1001          1\n         1     100000      65536\n")
    assert podman == ((0, 1001, 1), (1, 100000, 65536))
    assert to_outside(podman, 0) == 1001 and to_outside(podman, 1) == 100000 and to_outside(podman, 65536) == 165535
    assert to_outside(podman, 65537) is None
    with pytest.raises(ValueError):
        parse_id_map("0 1001\n")


def test_slurm_commands_run_with_the_real_ids_only_inside_a_user_namespace():
    from scrun.core.identity import INITIAL_NAMESPACE_MAP, Identity, parse_id_map, slurm_command_prefix

    host = Identity.from_maps(1001, 1001, INITIAL_NAMESPACE_MAP, INITIAL_NAMESPACE_MAP)
    assert not host.in_user_namespace and slurm_command_prefix(host) == []
    uid_map, gid_map = parse_id_map("0 1001 1\n1 100000 65536"), parse_id_map("0 1002 1\n1 100000 65536")
    rootless = Identity.from_maps(0, 0, uid_map, gid_map)
    assert (rootless.real_uid, rootless.real_gid, rootless.in_user_namespace) == (1001, 1002, True)
    assert slurm_command_prefix(rootless) == ["unshare", "--user", "--map-user=1001", "--map-group=1002", "--"]
    # A namespace that maps our ids onto themselves needs nothing.
    same = Identity.from_maps(1001, 1001, parse_id_map("1001 1001 1"), parse_id_map("1001 1001 1"))
    assert same.in_user_namespace and slurm_command_prefix(same) == []


MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /run/user/1000 rw shared:2 - tmpfs tmpfs rw
120 22 0:60 / /home/u/.local/share/containers/storage/overlay/abc/merged rw - overlay overlay rw,lowerdir=x
121 22 0:61 / /home/u/with\040space rw - fuse.fuse-overlayfs fuse-overlayfs rw
"""


def test_the_filesystem_holding_a_path_is_the_longest_mount_above_it():
    from scrun.core.mounts import filesystem_of, parse_mountinfo

    mounts = parse_mountinfo(MOUNTINFO)
    assert ("0:61", "/", "/home/u/with space", "fuse.fuse-overlayfs") in mounts
    assert filesystem_of("/home/u/.local/share/containers/storage/overlay/abc/merged", mounts) == "overlay"
    assert filesystem_of("/home/u/.local/share/containers/storage/overlay/abc/merged/bin", mounts) == "overlay"
    assert filesystem_of("/home/u/.local/share/containers/storage/overlay/abcd", mounts) == "ext4"
    assert filesystem_of("/run/user/1000/scrun", mounts) == "tmpfs"
    assert filesystem_of("/home/u/with space/x", mounts) == "fuse.fuse-overlayfs"


# podman 5, root, --uidmap: the runtime's private namespace has a second view of the overlay.
INTERMEDIATE = MOUNTINFO + r"""439 438 0:89 / /var/lib/containers/storage/overlay/fc01/merged rw - overlay overlay rw,lowerdir=a
441 425 0:89 / /var/tmp/intermediate-mountpoint-0.0 rw - overlay overlay rw,lowerdir=a
450 22 8:1 /srv/img /var/tmp/bound rw - ext4 /dev/sda1 rw
"""


def test_the_node_gets_the_storage_path_of_a_second_overlay_view():
    from scrun.core.mounts import node_visible_path

    merged = "/var/lib/containers/storage/overlay/fc01/merged"
    assert node_visible_path("/var/tmp/intermediate-mountpoint-0.0", INTERMEDIATE) == merged
    assert node_visible_path("/var/tmp/intermediate-mountpoint-0.0/", INTERMEDIATE) == merged
    assert node_visible_path("/var/tmp/intermediate-mountpoint-0.0/sub", INTERMEDIATE) == merged + "/sub"
    assert node_visible_path(merged, INTERMEDIATE) == merged  # the first view is the storage's
    # Unchanged: a single view, a plain directory, a bind mount of a disk (the node may have its own).
    assert node_visible_path("/home/u/.local/share/containers/storage/overlay/abc/merged", MOUNTINFO).endswith("abc/merged")
    assert node_visible_path("/srv/bundle/rootfs", INTERMEDIATE) == "/srv/bundle/rootfs"
    assert node_visible_path("/var/tmp/bound", INTERMEDIATE) == "/var/tmp/bound"


def test_only_a_rootless_overlay_rootfs_is_refused():
    from scrun.core.mounts import namespace_local_rootfs_error

    merged = "/home/u/.local/share/containers/storage/overlay/abc/merged"
    error = namespace_local_rootfs_error(merged, True, MOUNTINFO)
    assert error and merged in error and "scrun.lua" in error and "vfs" in error
    assert namespace_local_rootfs_error(merged, False, MOUNTINFO) is None  # root podman: the host sees it
    assert namespace_local_rootfs_error("/run/user/1000/stage/rootfs", True, MOUNTINFO) is None  # staged


@pytest.mark.parametrize("root_path, where", [
    ("/var/lib/containers/storage/overlay/x/merged", "under /var/lib/containers"),
    ("/var/lib/docker/overlay2/x/merged", "under /var/lib/docker"),
    ("/tmp/bundle/rootfs", "under /tmp"),
    ("/run/user/1000/x/rootfs", "under /run"),
    ("/home/u/.local/share/containers/storage/overlay/abc/merged", "an overlay mount made on this login node"),
])
def test_with_nothing_to_stage_a_login_local_rootfs_is_refused_with_the_fix(root_path, where):
    from scrun.core.mounts import login_local_rootfs_error

    error = login_local_rootfs_error(root_path, "/etc/slurm", MOUNTINFO)
    assert error and root_path in error and where in error, error
    assert "StageDir= (a directory every node mounts) in /etc/slurm/scrun.conf" in error and "scrun.lua" in error


@pytest.mark.parametrize("root_path", ["/scratch/u/podman-vfs/x/rootfs", "/home/u/bundle/rootfs", "/tmpfiles/rootfs"])
def test_a_rootfs_that_may_be_shared_is_left_to_the_node(root_path):
    from scrun.core.mounts import login_local_rootfs_error

    assert login_local_rootfs_error(root_path, "/etc/slurm", MOUNTINFO) is None


def test_node_config_drops_hooks_of_host_processes_and_sizes_the_nodes_tty():
    from scrun.core.nodebundle import node_config

    docker = {"root": {"path": "/var/lib/docker/x/merged"}, "process": {"terminal": False},
              "hooks": {"prestart": [{"path": "/proc/284/exe", "args": ["libnetwork-setkey"]},
                                     {"path": "/usr/bin/site-hook"}]}}
    out = node_config(docker, slurm_version=(24, 11, 5), root_path="/var/lib/docker/x/merged", terminal_size=(30, 100))
    assert out["hooks"] == {"prestart": [{"path": "/usr/bin/site-hook"}]} and docker["hooks"]["prestart"][0]["path"] == "/proc/284/exe"
    only_docker = {"root": {"path": "rootfs"}, "process": {}, "hooks": {"prestart": [{"path": "/proc/1/exe"}]}}
    out = node_config(only_docker, slurm_version=(22, 5, 8), root_path="/b/rootfs", terminal_size=None)
    assert out["hooks"] == {} and out["root"]["path"] == "/b/rootfs"
    podman_tty = {"root": {"path": "/m"}, "process": {"terminal": True}}
    assert node_config(podman_tty, slurm_version=(24, 11, 5), root_path="/m", terminal_size=(30, 100))["process"] == \
        {"terminal": True, "consoleSize": {"height": 30, "width": 100}}
    assert node_config(podman_tty, slurm_version=(22, 5, 8), root_path="/m", terminal_size=(30, 100)) is None  # 22.05 sizes srun's pty
    assert node_config(podman_tty, slurm_version=(24, 11, 5), root_path="/m", terminal_size=None) is None
    sized = {"root": {"path": "/m"}, "process": {"terminal": True, "consoleSize": {"height": 5, "width": 6}}}
    assert node_config(sized, slurm_version=(24, 11, 5), root_path="/m", terminal_size=(30, 100)) is None


def test_node_config_drops_a_network_namespace_of_the_login_node():
    from scrun.core.nodebundle import node_config

    podman43 = {"root": {"path": "/m"}, "process": {}, "linux": {"namespaces": [
        {"type": "pid"}, {"type": "network", "path": "/run/netns/netns-4d03"}, {"type": "mount"}],
        "sysctl": {"net.ipv4.ping_group_range": "0 0", "kernel.msgmax": "8192"}}}
    out = node_config(podman43, slurm_version=(22, 5, 8), root_path="/m", terminal_size=None)
    assert out["linux"]["namespaces"] == [{"type": "pid"}, {"type": "mount"}]
    assert out["linux"]["sysctl"] == {"kernel.msgmax": "8192"}, "net.* belonged to the dropped namespace"
    assert len(podman43["linux"]["namespaces"]) == 3, "the engine's config is not changed"
    fresh = {"root": {"path": "/m"}, "process": {}, "linux": {"namespaces": [{"type": "network"}, {"type": "ipc", "path": "/proc/9/ns/ipc"}]}}
    assert node_config(fresh, slurm_version=(24, 11, 5), root_path="/m", terminal_size=None) is None  # a new netns, or not network


def test_the_last_stderr_line_is_the_reason():
    from scrun.core.stderrfilter import last_line

    assert last_line(b"one\ntwo\n\n  \n") == b"two"
    assert last_line(b"one\nunfinished") == b"unfinished"
    assert last_line(b"") == b"" and last_line(b"\n\n") == b""
    assert last_line(b"x" * 1000) == b"x" * 400


def test_the_filter_notices_a_cancelled_step():
    from scrun.core.stderrfilter import StderrFilter

    filt = StderrFilter()
    out = filt.feed(b"mine\nslurmstepd: error: *** STEP 12.0 ON n1 CANCELLED AT 2026-11-30T14:00:00 ***\n")
    assert out == b"mine\n" and filt.step_cancelled
    other = StderrFilter()
    other.feed(b"slurmstepd: error: *** JOB 12 ON n1 CANCELLED AT 2026-11-30T14:00:00 ***\n")
    assert not other.step_cancelled  # the job's cancellation is salloc's news (revoked)
    # Cancelled while its tasks still launch, the step gets no slurmstepd line: srun's own says it.
    launching = StderrFilter(srun_verbose=True)
    out = launching.feed(b"srun: launching StepId=66.0 on host n1, 1 tasks: 0\n"
                         b"srun: Job step aborted: Waiting up to 7 seconds for job step to finish.\n")
    assert out == b"" and launching.step_cancelled


@pytest.mark.parametrize("line, oom", [
    # slurmstepd's words (task_cgroup_memory.c) in 22.05 and in 24.11
    (b"slurmstepd: error: Detected 1 oom-kill event(s) in StepId=12.0. Some of your processes may have been killed "
     b"by the cgroup out-of-memory handler.\n", True),
    (b"slurmstepd-n1: error: Detected 2 oom_kill events in StepId=12.0. Some of the step tasks have been OOM Killed.\n", True),
    (b"my program: Detected 1 oom-kill event\n", False),
    (b"out of memory\n", False),
])
def test_slurmstepds_out_of_memory_line_is_recognised_at_a_line_start(line, oom):
    from scrun.core.stderrfilter import OUT_OF_MEMORY

    assert bool(OUT_OF_MEMORY.search(b"container output\n" + line)) is oom
