"""The cluster tool (tools/cluster/): clear one-line errors, lanes by Debian release, config text."""
import socket

import pytest

from conftest import cluster_tool

pytestmark = pytest.mark.unit
cli = cluster_tool("cli")
daemons = cluster_tool("daemons")
lanes = cluster_tool("lanes")
shell = cluster_tool("shell")
slurmconf = cluster_tool("slurmconf")
target = cluster_tool("target")


def test_port_taken_by_a_stranger_is_named():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(shell.ClusterError, match=rf"TCP port {port} is taken by '.+', not slurmctld: stop it or free the port"):
            daemons.check_port(target.Host("slurm-22.05"), port, "slurmctld")


def test_bad_node_count_is_one_line(capsys):
    assert cli.main(["up", "--nodes", "0"]) == 1
    assert capsys.readouterr().err == "devcluster: error: --nodes 0: choose 1 to 16\n"


def test_unknown_lane_is_one_line(capsys):
    assert cli.main(["down", "--lane", "slurm-99.1"]) == 1
    assert capsys.readouterr().err == "devcluster: error: unknown lane 'slurm-99.1': choose from slurm-22.05, slurm-24.11, slurm-26.05 or all\n"


def test_timeout_shows_the_log_tail(tmp_path):
    log = tmp_path / "slurmctld.log"
    log.write_text("".join(f"line {i}\n" for i in range(30)) + "error: something broke\n")
    with pytest.raises(shell.ClusterError) as info:
        shell.wait_for(lambda: False, 0.2, "slurmctld to answer", log)
    text = str(info.value)
    assert "timed out" in text and "error: something broke" in text and "line 10" not in text


@pytest.mark.parametrize("text, debian", [("12.11\n", "12"), ("13.1\n", "13"), ("trixie/sid\n", "13"), ("bookworm/sid", "12")])
def test_host_debian_release(tmp_path, text, debian):
    path = tmp_path / "debian_version"
    path.write_text(text)
    assert lanes.host_debian(path) == debian


def test_only_unstable_skips_the_release_files_expiry():
    packages = cluster_tool("packages")
    assert packages.SUITE_APT_OPTIONS == {"sid": ['Acquire::Check-Valid-Until "false"']}


def test_unknown_debian_is_refused(tmp_path):
    path = tmp_path / "debian_version"
    path.write_text("forky/sid\n")
    with pytest.raises(shell.ClusterError, match="knows Debian 12 .* and 13"):
        lanes.host_debian(path)


@pytest.mark.parametrize("debian, order", [("12", ["slurm-22.05", "slurm-24.11", "slurm-26.05"]),
                                           ("13", ["slurm-24.11", "slurm-22.05", "slurm-26.05"])])
def test_the_hosts_own_lane_comes_first(debian, order):
    assert lanes.ordered_names(debian) == order
    assert [s.name for s in lanes.resolve(["all"], debian)] == order
    assert lanes.native_lane(debian).name == order[0]


def layout(**kw):
    base = dict(cluster="c", hostname="h", address="127.0.24.11", nodes=3, real_mem_mb=1000, cgroups=False, series=(24, 11))
    return slurmconf.Layout(**{**base, **kw})


def test_slurm_conf_for_several_nodes():
    conf = slurmconf.slurm_conf(layout())
    assert "NodeName=n[1-3]" in conf and "Port=[6818-6820]" in conf and "KillWait=5" in conf
    assert "SlurmctldHost=h(127.0.24.11)" in conf and "NodeAddr=127.0.24.11" in conf
    one = slurmconf.slurm_conf(layout(nodes=1))
    assert "NodeName=n1 " in one and "Port=6818 " in one


def test_a_namespace_lane_never_touches_cgroups():
    conf = slurmconf.slurm_conf(layout())
    assert "proctrack/linuxproc" in conf and "task/none" in conf and "proctrack/cgroup" not in conf
    assert "CgroupPlugin=disabled" in slurmconf.cgroup_conf(layout())
    # 22.05 has no `disabled`: the key is left out rather than refused at start.
    assert "CgroupPlugin" not in slurmconf.cgroup_conf(layout(series=(22, 5)))


def test_the_host_lane_on_a_hybrid_host_uses_cgroup_v1():
    conf = slurmconf.slurm_conf(layout(cgroups=True, series=(22, 5)))
    assert "ProctrackType=proctrack/cgroup" in conf and "TaskPlugin=task/cgroup" in conf
    assert "CgroupPlugin=cgroup/v1" in slurmconf.cgroup_conf(layout(cgroups=True))


def test_namespace_commands_run_inside_with_a_clean_env_and_inner_timeout():
    t = target.Namespaced("slurm-24.11", 4242)
    argv = t.argv(["sinfo"], timeout=15, env={"CI": "true"})
    assert argv[:6] == ["nsenter", "-t", "4242", "-a", "--", "env"]
    assert "-i" in argv and "CI=true" in argv
    assert argv[-5:] == ["timeout", "-k", "5", "15", "sinfo"]
    assert str(t.path("/run/slurm/slurmctld.pid")) == "/proc/4242/root/run/slurm/slurmctld.pid"


def test_a_new_users_subordinate_range_starts_after_every_existing_one():
    users = cluster_tool("users")
    assert users.free_subid_start("") == users.SUBID_FIRST
    assert users.free_subid_start("a:100000:65536\nb:165536:65536\n", "c:300000:10\nbroken line\n") == 300010


def test_each_debian_gets_its_docker_client():
    packages = cluster_tool("packages")
    assert "docker-cli" in packages.lane_packages("trixie") and "docker-cli" not in packages.lane_packages("bookworm")
    assert "docker-cli" in packages.lane_packages("sid")
    assert "docker.io" in packages.lane_packages("bookworm")


def test_dockerd_and_rootless_dockerd_configs():
    import json

    docker = cluster_tool("docker")
    conf = json.loads(docker.daemon_json("/usr/local/bin/scrun"))
    assert conf["runtimes"] == {"scrun": {"path": "/usr/local/bin/scrun"},
                                "scrun-staged": {"path": "/usr/local/bin/scrun",
                                                 "runtimeArgs": ["--slurm-conf", "/etc/slurm/staged/slurm.conf"]}}
    assert conf["bridge"] == "none" and not conf["iptables"]
    cmd = docker.rootless_command(1001, "/home/u")
    assert "rootlesskit --net=host" in cmd and "mount -t tmpfs none $d" in cmd and "--host unix:///run/user/1001/docker.sock" in cmd


def test_crun_state_of_a_user_is_never_made_by_a_root_run_command():
    for line in slurmconf.OCI_CONF.splitlines():
        if line.startswith(("RunTimeQuery", "RunTimeKill", "RunTimeDelete")):
            assert "test -d /run/crun-slurm/%u &&" in line, line
