"""core.imagecache: which image a rootfs is (from real mountinfo lines), and the cached config."""
import pytest

from scrun.core.imagecache import cached_config, image_key, overlay_layers, overlay_mounts, usable_paths

pytestmark = pytest.mark.unit

S = "/var/lib/containers/storage/overlay"
MERGED = f"{S}/5aac/merged"
PODMAN = (f"350 343 0:90 / {MERGED} rw,relatime - overlay overlay rw,lowerdir={S}/l/7QX4:{S}/l/AB12,"
          f"upperdir={S}/5aac/diff,workdir={S}/5aac/work,uuid=on\n")
D = "/var/lib/docker/overlay2"
DOCKER = (f"400 27 0:95 / {D}/c0ff/merged rw,relatime - overlay overlay rw,lowerdir={D}/l/INIT:{D}/l/IMG1,"
          f"upperdir={D}/c0ff/diff,workdir={D}/c0ff/work\n")


def test_the_layers_of_podmans_overlay_are_read_from_mountinfo():
    assert overlay_layers("25 1 0:2 / / rw - ext4 /dev/vda rw\n" + PODMAN, MERGED) == (
        (f"{S}/l/7QX4", f"{S}/l/AB12"), f"{S}/5aac/diff")


def test_relative_layers_are_under_the_storage_overlay_directory():
    line = PODMAN.replace(f"lowerdir={S}/l/7QX4:{S}/l/AB12", "lowerdir=l/7QX4:l/AB12")
    assert overlay_layers(line, MERGED)[0] == (f"{S}/l/7QX4", f"{S}/l/AB12")


@pytest.mark.parametrize("text", ["25 1 0:2 / /var/lib/containers/storage/overlay/5aac/merged rw - xfs /dev/vdb rw\n",
                                  PODMAN.replace(MERGED, "/elsewhere"), ""])
def test_a_rootfs_that_is_no_overlay_is_not_an_image(text):
    assert overlay_layers(text, MERGED) is None


def test_the_topmost_mount_at_the_path_counts():
    assert overlay_layers(PODMAN + f"351 350 0:91 / {MERGED} rw - tmpfs tmpfs rw\n", MERGED) is None


def test_the_key_follows_the_layers_and_leaves_out_dockers_init_layer():
    links = {f"{D}/l/INIT": f"{D}/c0ff-init/diff", f"{D}/l/IMG1": f"{D}/1a2b/diff", f"{D}/l/INIT2": f"{D}/beef-init/diff"}
    layers = overlay_layers(DOCKER, f"{D}/c0ff/merged")[0]
    key = image_key(layers, realpath=links.get)
    assert key == image_key((f"{D}/l/INIT2", f"{D}/l/IMG1"), realpath=links.get)  # another container, same image
    assert key != image_key((f"{D}/l/IMG1",), realpath=lambda p: f"{D}/other/diff")
    assert len(key) == 32 and int(key, 16) >= 0


def test_layer_order_is_part_of_the_key():
    assert image_key(("/a", "/b"), realpath=str) != image_key(("/b", "/a"), realpath=str)


def test_each_top_level_directory_gets_its_own_private_overlay_except_what_is_mounted_anyway():
    mounts = overlay_mounts("/c/u/k/rootfs", ["etc", "usr", "dev", "proc", "sys", "run", "tmp"],
                            [{"destination": "/run", "type": "tmpfs"}, {"destination": "/etc/hosts"}], "/s/u/id/upper")
    assert [m["destination"] for m in mounts] == ["/etc", "/tmp", "/usr"]
    assert mounts[0] == {"destination": "/etc", "type": "overlay", "source": "overlay",
                         "options": ["userxattr", "lowerdir=/c/u/k/rootfs/etc", "upperdir=/s/u/id/upper/etc/up",
                                     "workdir=/s/u/id/upper/etc/work"]}


def test_the_cached_config_has_a_read_only_root_and_the_overlays_first():
    config = {"root": {"path": "/old"}, "mounts": [{"destination": "/etc/hosts"}], "process": {"args": ["sh"]}}
    overlays = [{"destination": "/etc", "type": "overlay"}]
    out = cached_config(config, "/c/rootfs", overlays)
    assert out["root"] == {"path": "/c/rootfs", "readonly": True}
    assert [m["destination"] for m in out["mounts"]] == ["/etc", "/etc/hosts"]
    assert config["root"] == {"path": "/old"}, "the input is not changed"


@pytest.mark.parametrize("path,ok", [("/scratch/cache", True), ("/a,b", False), ("/a:b", False), ("/a\\b", False),
                                     ("/a=b", False)])
def test_paths_that_would_break_the_mount_options_are_refused(path, ok):
    assert usable_paths("/scratch/x", path) is ok


@pytest.mark.parametrize("args,one", [
    ((), True), (("--nodes=1", "--ntasks=1", "--time=5"), True), (("--nodes=2",), False), (("--nodes=1-2",), False),
    (("--ntasks=4",), False), (("--ntasks-per-node=2",), False), (("-N", "2"), False), (("-N2",), False),
    (("-n", "1"), True), (("--nodelist=n1", "--mem=1G"), True), (("--nodelist=n1,n2",), False), (("-w", "n[1-2]"), False)])
def test_the_cache_is_for_steps_of_one_task(args, one):
    from scrun.core.imagecache import one_task

    assert one_task(args) is one
