"""Built-in staging's decisions (core.staging): what is copied for the nodes, and where."""
import pytest

from scrun.core.staging import plan_staging, staged_config
from scrun.errors import InvalidInputError

SHARED = ("/scratch", "/home")


def plan(config=None, bundle="/var/lib/containers/b", root_path="/var/lib/containers/b/merged", dirs=()):
    return plan_staging(config=config or {}, bundle=bundle, root_path=root_path, shared=SHARED,
                        stage_dir="/scratch/scrun", user="alice", container_id="c1", is_dir=lambda p: p in dirs)


def test_a_login_local_bundle_is_copied_to_the_users_stage_dir():
    p = plan()
    assert p.dest == "/scratch/scrun/alice/c1" and p.rootfs == "/var/lib/containers/b/merged"
    assert p.config_file == "/scratch/scrun/alice/c1/config.json" and p.files == ()


def test_a_bundle_on_shared_storage_runs_in_place():
    assert plan(bundle="/scratch/vfs/b", root_path="/scratch/vfs/b/rootfs") is None
    assert plan(bundle="/home/alice/b", root_path="/home/alice/b/rootfs") is None


def test_a_shared_rootfs_with_a_local_bundle_copies_only_the_config():
    p = plan(bundle="/run/docker/b", root_path="/scratch/vfs/rootfs")
    assert p.rootfs is None and p.dest == "/scratch/scrun/alice/c1"


def test_login_local_bind_files_are_copied_system_and_shared_ones_not():
    config = {"mounts": [
        {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/docker/containers/x/hosts", "options": ["rbind"]},
        {"destination": "/dev/null", "type": "bind", "source": "/dev/null"},
        {"destination": "/data", "type": "none", "source": "/scratch/data", "options": ["bind"]},
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/host-etc", "type": "bind", "source": "/etc", "options": ["rbind"]},  # the node's own
        {"destination": "/etcetera", "type": "bind", "source": "/etcetera/x", "options": ["rbind"]},
    ]}
    p = plan(config, bundle="/scratch/b", root_path="/scratch/b/rootfs")
    assert p.files == ((0, "/var/lib/docker/containers/x/hosts"), (5, "/etcetera/x")) and p.rootfs is None
    config["mounts"].pop()
    p = plan(config, bundle="/scratch/b", root_path="/scratch/b/rootfs")
    assert p.files == ((0, "/var/lib/docker/containers/x/hosts"),) and p.rootfs is None
    staged = staged_config(config, p)
    assert staged["mounts"][0]["source"] == "/scratch/scrun/alice/c1/mounts/0-hosts"
    assert staged["mounts"][1:] == config["mounts"][1:] and config["mounts"][0]["source"].startswith("/var/lib")


def test_a_login_local_volume_is_refused_with_the_fix():
    config = {"mounts": [{"destination": "/data", "type": "bind", "source": "/var/lib/volumes/v"}]}
    with pytest.raises(InvalidInputError, match=r"bind mount /var/lib/volumes/v \(mounts\[0\]\) is on the login node"):
        plan(config, dirs=("/var/lib/volumes/v",))


def test_the_staged_config_points_at_the_copy():
    config = {"root": {"path": "/var/lib/containers/b/merged", "readonly": True}, "process": {"args": ["true"]}}
    staged = staged_config(config, plan(config))
    assert staged["root"] == {"path": "/scratch/scrun/alice/c1/rootfs", "readonly": True}
    assert staged["process"] == config["process"] and config["root"]["path"].startswith("/var/lib")


def test_paths_are_compared_by_component():
    assert plan(bundle="/scratchy/b", root_path="/scratchy/b/rootfs") is not None


def test_podmans_shm_directory_becomes_a_fresh_tmpfs_on_the_node():
    config = {"mounts": [{"destination": "/dev/shm", "type": "bind", "source": "/var/lib/containers/x/userdata/shm",
                          "options": ["bind", "rprivate"]}]}
    p = plan(config, bundle="/scratch/b", root_path="/scratch/b/rootfs", dirs=("/var/lib/containers/x/userdata/shm",))
    assert p.tmpfs == ((0, None),) and p.files == ()
    assert staged_config(config, p)["mounts"][0] == {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs",
                                                     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}


def test_the_fresh_shm_keeps_the_size_the_engine_gave_its_own():
    """podman --shm-size 16m: podman's userdata/shm tmpfs is 16 MiB; the node's must be too."""
    shm = "/var/lib/containers/x/userdata/shm"
    config = {"mounts": [{"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["bind"]}]}
    p = plan_staging(config=config, bundle="/scratch/b", root_path="/scratch/b/rootfs", shared=SHARED,
                     stage_dir="/scratch/scrun", user="alice", container_id="c1", is_dir=lambda p: p == shm,
                     tmpfs_size=lambda p: "size=16384k" if p == shm else None)
    assert p.tmpfs == ((0, "size=16384k"),)
    assert staged_config(config, p)["mounts"][0]["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=16384k"]


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
95 22 0:50 / /var/lib/containers/x/userdata/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=16384k,uid=0
96 22 0:51 / /var/lib/containers/y/userdata/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,mode=1777
97 22 0:52 / /var/lib/containers/z/userdata/shm rw,relatime - tmpfs shm rw,size=8m
98 97 8:1 /z /var/lib/containers/z/userdata/shm rw,relatime - ext4 /dev/sda1 rw
"""


@pytest.mark.parametrize("path,size", [
    ("/var/lib/containers/x/userdata/shm", "size=16384k"),
    ("/var/lib/containers/x/userdata/shm/", "size=16384k"),
    ("/var/lib/containers/y/userdata/shm", None),   # a tmpfs without a size
    ("/var/lib/containers/z/userdata/shm", None),   # covered by a bind of something else
    ("/var/lib/containers/x/userdata", None),       # not a mount point
])
def test_the_size_of_a_tmpfs_mounted_at_a_path(path, size):
    from scrun.core.mounts import tmpfs_size_option

    assert tmpfs_size_option(path, MOUNTINFO) == size


def test_hooks_that_name_a_login_node_process_are_dropped_from_the_copy():
    config = {"hooks": {"prestart": [{"path": "/proc/1234/exe", "args": ["libnetwork-setkey"]},
                                     {"path": "/usr/bin/site-hook"}], "poststop": []}}
    staged = staged_config(config, plan(config))
    assert staged["hooks"] == {"prestart": [{"path": "/usr/bin/site-hook"}], "poststop": []}
    assert len(config["hooks"]["prestart"]) == 2
