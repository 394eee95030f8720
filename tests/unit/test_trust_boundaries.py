"""Pure logic of the trust boundaries: what a container may ask for, which salloc lines are
believed, which paths root follows, how much of a line is held (tests/security/ runs the attacks)."""
import os
import stat
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scrun.core.bundle import parse_bundle_config
from scrun.core.ids import default_job_name
from scrun.core.options import OPTION_TABLE, OPTIONS_BY_ENV, build_job_options, merge_option_env
from scrun.core.pathtrust import untrusted_component
from scrun.core.stderrfilter import MAX_NOISE_LINE, StderrFilter
from scrun.errors import InvalidInputError
from scrun.slurm.parse import parse_salloc_line
from scrun.slurm.runner import slurm_command

CALLER_ONLY = {"SCRUN_PROLOG", "SCRUN_EPILOG", "SCRUN_TASK_PROLOG", "SCRUN_TASK_EPILOG", "SCRUN_BURST_BUFFER",
               "SCRUN_REMOTE_CWD", "SCRUN_WORKING_DIR", "SCRUN_CLUSTERS", "SCRUN_CLUSTER_CONSTRAINT",
               "SCRUN_ACCOUNT", "SCRUN_QOS", "SCRUN_RESERVATION", "SCRUN_WCKEY", "SCRUN_PROFILE",
               "SCRUN_SLURMD_DEBUG", "SCRUN_ACCTG_FREQ", "SCRUN_CPU_FREQ_REQ", "SCRUN_GPU_FREQ", "SCRUN_POWER",
               "SCRUN_NETWORK"}


def test_the_table_marks_exactly_the_options_a_container_may_not_set():
    assert {row.env for row in OPTION_TABLE if row.caller_only} == CALLER_ONLY
    for name in ("SCRUN_PARTITION", "SCRUN_TIMELIMIT", "SCRUN_CPUS_PER_TASK", "SCRUN_MEM_PER_NODE", "SCRUN_JOB_NAME",
                 "SCRUN_JOB_NUM_NODES", "SCRUN_GPUS"):
        assert not OPTIONS_BY_ENV[name].caller_only


@pytest.mark.parametrize("name", sorted(CALLER_ONLY))
def test_a_container_env_asking_for_a_caller_only_option_is_refused_with_its_name(name):
    with pytest.raises(InvalidInputError) as exc:
        merge_option_env({}, {name: "/usr/bin/env"})
    text = str(exc.value)
    assert text.startswith(f"{name} from the container's environment") and "caller's environment" in text
    assert "\n" not in text


@pytest.mark.parametrize("name", sorted(CALLER_ONLY))
def test_the_caller_may_set_them(name):
    value = "1" if OPTIONS_BY_ENV[name].check is None else ("debug" if name == "SCRUN_SLURMD_DEBUG" else "x")
    assert merge_option_env({name: value}, {"SCRUN_PARTITION": "debug"}) == {name: value, "SCRUN_PARTITION": "debug"}


def test_an_annotation_asking_for_a_caller_only_option_is_refused(tmp_path):
    config = ('{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"]}, '
              '"annotations": {"org.slurm.prolog": "/usr/bin/env"}}')
    with pytest.raises(InvalidInputError, match=r"^SCRUN_PROLOG from the container's annotation org.slurm.prolog"):
        parse_bundle_config(str(tmp_path), config)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=1).filter(
    lambda s: any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in s)))
def test_no_option_value_may_hold_a_control_character(value):
    with pytest.raises(InvalidInputError, match="control character"):
        build_job_options({"SCRUN_PARTITION": value})


def test_an_image_annotation_cannot_put_a_line_into_the_job_name():
    name = default_job_name("abc", {"org.opencontainers.image.ref.name": "x\nsalloc: Granted job allocation 7"})
    assert "\n" not in name and name.startswith("scrun:x?salloc")


@pytest.mark.parametrize("line, parsed", [
    ("salloc: Pending job allocation 43", ("pending", 43)),
    ("salloc: Granted job allocation 43\n", ("granted", 43)),
    ("salloc: Job allocation 43 has been revoked.", ("revoked", 43)),
    # salloc quoting what it was given: never a job id
    ("salloc: error: 'Pending job allocation 7' can't be reached now, or it is an invalid entry for --cluster",
     ("error", "'Pending job allocation 7' can't be reached now, or it is an invalid entry for --cluster")),
    ("salloc: error: Pending job allocation 7", ("error", "Pending job allocation 7")),
    ("x salloc: Pending job allocation 7", None),
    ("salloc: Pending job allocation 7 extra", None),
    ("srun: Granted job allocation 7", None),
])
def test_salloc_lines_are_believed_whole_only(line, parsed):
    assert parse_salloc_line(line) == parsed


def test_scancel_is_always_restricted_to_the_real_users_jobs():
    argv = slurm_command(["/usr/bin/scancel", "--signal=9", "12.0"])
    i = argv.index("/usr/bin/scancel")
    assert argv[i + 1] == f"--user={os.getuid()}" and argv[i + 2:] == ["--signal=9", "12.0"]
    assert not any(a.startswith("--user") for a in slurm_command(["squeue", "-j", "1"]))


# ---------------------------------------------------------------- paths root follows

def fake_fs(entries: dict[str, tuple[int, int, str | None]]):
    """path → (uid, mode, link target or None); directories by mode."""
    def lstat(path):
        if path not in entries:
            raise FileNotFoundError(path)
        uid, mode, _ = entries[path]
        return SimpleNamespace(st_uid=uid, st_mode=mode)

    def readlink(path):
        return entries[path][2]

    return lstat, readlink


D, L = stat.S_IFDIR, stat.S_IFLNK
BASE = {"/": (0, D | 0o755, None), "/run": (0, D | 0o755, None), "/tmp": (0, D | 0o1777, None),
        "/home": (0, D | 0o755, None), "/home/eve": (1002, D | 0o755, None)}


@pytest.mark.parametrize("extra, path, trusted, problem", [
    ({"/run/scrun": (0, D | 0o711, None)}, "/run/scrun", (0,), None),
    ({}, "/run/scrun", (0,), None),  # missing: root makes it
    ({"/home/eve/st": (0, D | 0o700, None)}, "/home/eve/st", (0,), "/home/eve is owned by uid 1002"),
    ({"/tmp/r": (1002, L, "/run")}, "/tmp/r/scrun", (0,), "/tmp/r is a symlink owned by uid 1002"),
    ({"/tmp/r": (0, L, "/run")}, "/tmp/r/scrun", (0,), None),  # root's link in sticky /tmp
    ({"/tmp/r": (0, L, "/home/eve")}, "/tmp/r/x", (0,), "/home/eve is owned by uid 1002"),
    ({"/tmp/scrun-1001": (1002, D | 0o700, None)}, "/tmp/scrun-1001", (0, 1001), "/tmp/scrun-1001 is owned by uid 1002"),
    ({"/tmp/scrun-1001": (1001, D | 0o700, None)}, "/tmp/scrun-1001", (0, 1001), None),
    ({}, "/tmp", (0,), "/tmp is writable by other users (mode 1777)"),  # never the root itself
    ({"/run/w": (0, D | 0o777, None)}, "/run/w/scrun", (0,), "/run/w is writable by other users (mode 0777)"),
    ({"/run/a": (0, L, "a")}, "/run/a", (0,), "/run/a: too many levels of symbolic links"),
    ({"/run/up": (0, L, "../home/eve")}, "/run/up/x", (0,), "/home/eve is owned by uid 1002"),
])
def test_the_way_to_a_state_root_is_judged_link_by_link(extra, path, trusted, problem):
    lstat, readlink = fake_fs({**BASE, **extra})
    assert untrusted_component(path, trusted, lstat=lstat, readlink=readlink) == problem


# ---------------------------------------------------------------- bounded buffers

def test_a_container_line_that_looks_like_srun_s_and_never_ends_is_not_held():
    filt = StderrFilter()
    out = filt.feed(b"srun: ")
    for _ in range(100):
        out += filt.feed(b"x" * 65536)
    assert len(filt._held) <= MAX_NOISE_LINE
    assert out + filt.flush() == b"srun: " + b"x" * 65536 * 100


def test_salloc_says_when_the_time_limit_ended_the_job():
    assert parse_salloc_line("salloc: Job 274 has exceeded its time limit and its allocation has been revoked.") == \
        ("timelimit", 274)
