"""scrun doctor's readers of podman's, docker's and the subordinate-id files (pure)."""
import pytest

from scrun.core.hostsetup import docker_registration, podman_registration, subordinate_ids

pytestmark = pytest.mark.unit

SYSTEM = ("/usr/share/containers/containers.conf", '[engine]\nruntime_supports_json = ["crun", "runc"]\n')
ETC = ("/etc/containers/containers.conf",
       '[engine]\nruntime_supports_json = ["crun", "scrun"]\n[engine.runtimes]\nscrun = ["/usr/local/bin/scrun"]\n')


def test_podman_needs_the_runtime_and_json_and_a_later_file_wins():
    named, listed = podman_registration([SYSTEM, ETC])
    assert named.named and named.detail == ETC[0] and listed.named and listed.detail == ETC[0]
    named, listed = podman_registration([ETC, SYSTEM])  # the system list, read last, lacks scrun
    assert named.named and not listed.named and SYSTEM[0] in listed.detail
    named, listed = podman_registration([SYSTEM])
    assert not named.named and "[engine.runtimes]" in named.detail and not listed.named
    named, listed = podman_registration([])
    assert not named.named and "default list" in listed.detail


def test_podman_file_that_is_not_toml_is_named():
    with pytest.raises(ValueError, match="/etc/containers/containers.conf: not valid TOML"):
        podman_registration([("/etc/containers/containers.conf", "[engine\n")])


def test_docker_daemon_json():
    assert docker_registration("d.json", '{"runtimes": {"scrun": {"path": "/usr/local/bin/scrun"}}}').named
    assert not docker_registration("d.json", '{"runtimes": {"runc": {"path": "runc"}}}').named
    assert not docker_registration("d.json", "").named
    assert not docker_registration("d.json", "[]").named
    with pytest.raises(ValueError, match="d.json: not valid JSON"):
        docker_registration("d.json", "{")


def test_subordinate_ids_by_name_or_uid():
    text = "alice:100000:65536\n1001:300000:1000\nbob:200000:65536\nbroken line\nalice:x:1\n"
    assert subordinate_ids(text, "alice", 1000) == 65536
    assert subordinate_ids(text, "carol", 1001) == 1000
    assert subordinate_ids(text, "dave", 1002) == 0
