"""tools/devcluster.py: clear one-line errors for a bad environment, and its pure parts."""
import socket

import pytest

from conftest import _devcluster

pytestmark = pytest.mark.unit
dc = _devcluster()


def test_port_taken_by_a_stranger_is_named():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(dc.ClusterError, match=rf"TCP port {port} is taken by '.+', not slurmctld: stop it or free the port"):
            dc.check_port(port, "slurmctld")


def test_bad_node_count_is_one_line(capsys):
    assert dc.main(["up", "--nodes", "0"]) == 1
    err = capsys.readouterr().err
    assert err == "devcluster: error: --nodes 0: choose 1 to 16\n"


def test_timeout_shows_the_log_tail(tmp_path):
    log = tmp_path / "slurmctld.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)) + "error: something broke\n")
    with pytest.raises(dc.ClusterError) as info:
        dc.wait_for(lambda: False, 0.2, "slurmctld to answer", log)
    text = str(info.value)
    assert "timed out" in text and "error: something broke" in text and "line 10" not in text


def test_slurm_conf_for_several_nodes():
    conf = dc.slurm_conf(3)
    assert "NodeName=n[1-3]" in conf and "Port=[6818-6820]" in conf and "KillWait=5" in conf
    assert "NodeName=n1 " in dc.slurm_conf(1) and "Port=6818 " in dc.slurm_conf(1)
