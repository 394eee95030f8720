"""anchor.staging.copy_tree on a temporary tree: what a rootfs copy must keep, and leave out."""
import os
import stat

import pytest

from scrun.anchor.staging import copy_tree

pytestmark = pytest.mark.unit
# security.capability of a file with cap_net_raw=ep (what `setcap cap_net_raw+ep` writes): ping's, in images.
NET_RAW = b"\x01\x00\x00\x02\x00 \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


@pytest.mark.skipif(os.geteuid() != 0, reason="owners other than ours need root (CI runs as root)")
def test_owners_modes_times_links_and_attributes_are_kept_and_specials_left_out(tmp_path):
    src = tmp_path / "src"
    (src / "usr" / "bin").mkdir(parents=True)
    tool = src / "usr" / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\n" * 1000)
    os.chown(tool, 0, 50)
    tool.chmod(0o4755)  # setuid: must survive the chown
    os.setxattr(tool, "user.origin", b"image")
    ping = src / "usr" / "bin" / "ping"
    ping.write_bytes(b"\x7fELF")
    os.setxattr(ping, "security.capability", NET_RAW)  # the copy's chown must not clear it (it did)
    (src / "bin").symlink_to("usr/bin")
    (src / "dangling").symlink_to("/nowhere")
    os.mkfifo(src / "fifo")
    ro = src / "ro"
    ro.mkdir()
    (ro / "inside").write_text("x")
    os.chown(ro / "inside", 1234, 1234)
    ro.chmod(0o555)  # a directory we could not write into once its mode is set
    os.utime(tool, ns=(1_000_000_000, 2_000_000_000))
    dst = tmp_path / "dst"
    copied = copy_tree(str(src), str(dst))
    copied_tool = dst / "usr" / "bin" / "tool"
    st = os.lstat(copied_tool)
    assert copied == 10_000 + 4 + 1
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o4755, 0, 50, 2_000_000_000)
    assert os.getxattr(copied_tool, "user.origin") == b"image"
    assert os.getxattr(dst / "usr" / "bin" / "ping", "security.capability") == NET_RAW
    assert os.readlink(dst / "bin") == "usr/bin" and os.readlink(dst / "dangling") == "/nowhere"
    assert not os.path.lexists(dst / "fifo")
    assert stat.S_IMODE(os.stat(dst / "ro").st_mode) == 0o555 and os.stat(dst / "ro" / "inside").st_uid == 1234
