"""Container records (atomic, pid-reuse safe) and the anchor control protocol."""
import json
import os
import subprocess

import pytest

from scrun.anchor.protocol import PROTOCOL_VERSION, ProtocolError, decode, decode_request, encode, reachable_path
from scrun.core.status import Status
from scrun.errors import ContainerExistsError, ContainerNotFoundError
from scrun.store.live import anchor_running, live_status, process_starttime
from scrun.store.records import ContainerRecord, load_record, make_container_dir, save_record

pytestmark = pytest.mark.unit


def record(**kw):
    base = dict(id="c1", bundle="/b", orig_bundle="/b", config_file="/b/config.json", root_path="/b/rootfs",
                orig_root_path="/b/rootfs", oci_version="1.0.2")
    base.update(kw)
    return ContainerRecord(**base)


def test_record_round_trip_and_duplicate(tmp_path):
    make_container_dir(str(tmp_path), "c1")
    with pytest.raises(ContainerExistsError):
        make_container_dir(str(tmp_path), "c1")
    rec = record(status=Status.RUNNING, job_id=7, annotations={"a": "b"})
    save_record(str(tmp_path), rec)
    assert load_record(str(tmp_path), "c1") == rec
    assert os.listdir(tmp_path / "c1") == ["state.json"]  # no temp file left
    with pytest.raises(ContainerNotFoundError, match="does not exist"):
        load_record(str(tmp_path), "c2")


def test_live_status_sees_a_dead_anchor(tmp_path):
    child = subprocess.Popen(["sleep", "30"])
    try:
        rec = record(status=Status.RUNNING, anchor_pid=child.pid, anchor_starttime=process_starttime(child.pid)).to_json()
        assert anchor_running(rec) and live_status(rec) == Status.RUNNING
        assert not anchor_running(record(anchor_pid=child.pid, anchor_starttime=1).to_json())  # pid reused by another process
    finally:
        child.kill()
        child.wait()
    assert live_status(rec) == Status.STOPPED


def test_protocol_round_trip_and_rejects():
    assert decode(encode({"op": "kill", "signal": 9})) == {"v": PROTOCOL_VERSION, "op": "kill", "signal": 9}
    with pytest.raises(ProtocolError, match="version"):
        decode(json.dumps({"v": 99, "op": "start"}).encode())
    with pytest.raises(ProtocolError, match="unknown op"):
        decode_request(encode({"op": "exec"}))
    with pytest.raises(ProtocolError):
        decode(b"not json")


def test_long_socket_paths_go_through_proc(tmp_path):
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    path, dirfd = reachable_path(str(deep / "ctl.sock"))
    try:
        assert dirfd is not None and path.startswith("/proc/self/fd/") and len(path) < 100
    finally:
        os.close(dirfd)
    assert reachable_path("/run/x/ctl.sock") == ("/run/x/ctl.sock", None)


def test_the_state_carries_the_job_in_annotations_once_there_is_one():
    from scrun.store.live import state_document

    doc = {"oci_version": "1.0.2", "id": "c", "bundle": "/b", "annotations": {"a": "1"}, "anchor_pid": 5}
    assert state_document({**doc, "job_id": None, "job_state": ""}, "creating")["annotations"] == {"a": "1"}
    pending = state_document({**doc, "job_id": 7, "job_state": "PENDING", "pending_reason": "Resources", "nodes": ""}, "creating")
    assert pending["annotations"] == {"a": "1", "org.slurm.job_id": "7", "org.slurm.job_state": "PENDING",
                                      "org.slurm.reason": "Resources"}
    running = state_document({**doc, "job_id": 7, "job_state": "RUNNING", "pending_reason": "", "nodes": "n[1-2]"}, "running")
    assert running["annotations"]["org.slurm.nodes"] == "n[1-2]" and "org.slurm.reason" not in running["annotations"]
    assert all(isinstance(v, str) for v in running["annotations"].values())  # runtime-spec: a map of strings


def test_a_pid_file_that_cannot_be_written_names_the_flag_not_the_state_root(tmp_path):
    from scrun.cli.pidfile import write_pid_file
    from scrun.errors import InvalidInputError

    target = tmp_path / "taken"
    target.mkdir()  # a directory where the pid file should go
    with pytest.raises(InvalidInputError, match=r"^--pid-file .*taken: cannot write: Is a directory$"):
        write_pid_file(str(target), 1234)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temporary file left
    write_pid_file(str(tmp_path / "pid"), 1234)
    assert (tmp_path / "pid").read_text() == "1234"


def test_a_state_file_that_cannot_be_written_says_where_and_what_to_do(tmp_path):
    from scrun.errors import StateError
    from scrun.store.records import write_json_atomic

    with pytest.raises(StateError, match="cannot write .*: No such file or directory .*--root"):
        write_json_atomic(str(tmp_path / "gone" / "state.json"), {})


@pytest.mark.parametrize("schema, says", [
    (2, "was written by a newer scrun (record format 2; this scrun reads 1): use that scrun, or cancel its job"),
    (None, "is not a scrun record (format None)"),
    ("1", "is not a scrun record (format '1')"),
])
def test_a_record_of_another_format_gets_one_clear_line(tmp_path, schema, says):
    """An upgrade with running containers: a format this scrun does not know is never guessed at."""
    from scrun.errors import ScrunError
    from scrun.store.live import read_record

    root = tmp_path / "root"
    (root / "c1").mkdir(parents=True)
    (root / "c1" / "state.json").write_text(json.dumps({"schema": schema, "id": "c1"}))
    with pytest.raises(ScrunError) as exc:
        read_record(str(root), "c1")
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_refusals_are_a_closed_set_each_one_error_class():
    """An anchor's refusal becomes the error the CLI would have raised itself; an unknown kind
    (a newer anchor) is an AnchorError, never a traceback."""
    from scrun import errors
    from scrun.anchor.protocol import REFUSALS, kind_of, refusal, refusal_error

    for kind, cls in REFUSALS.items():
        err = refusal_error(refusal(kind, f"said {kind}"), "kill")
        assert type(err) is cls and str(err) == f"said {kind}"
    assert type(refusal_error({"ok": False, "error": "x", "kind": "from-the-future"}, "kill")) is errors.AnchorError
    assert str(refusal_error({"ok": False}, "start")) == "start refused"
    assert kind_of(errors.InvalidStatusError("x")) == "status" and kind_of(errors.LuaError("x")) == "internal"
    with pytest.raises(ValueError, match="unknown refusal kind"):
        refusal("nope", "x")
