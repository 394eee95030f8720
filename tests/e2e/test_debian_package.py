"""The Debian package (issue 32), built from this checkout by tools/deb.py and installed with dpkg
into a fresh root: an overlay of the lane's own system with scrun's launcher taken out and the
checkout hidden, in a mount namespace of its own. There it runs the demo, its man page renders and
`scrun doctor` passes; purged, the overlay's upper layer shows what the package left behind,
byte for byte. The lane's own system and its dpkg database never see the package."""
import filecmp
import os
import pathlib
import signal
import stat
import subprocess
import sys

import pytest

from conftest import IMAGE

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[2]
CHECKOUT = REPO.parent
# What `make install` put on the lane: the fresh root does not have it.
MAKE_INSTALL = ("/usr/local/bin/scrun",)
# Shared with the lane as they are (the cluster, podman's storage, the shared filesystems);
# everything else is the overlay.
SHARED = ("/proc", "/sys", "/dev", "/run", "/tmp", "/home", "/scratch", "/var/lib/containers")
# dpkg's and man-db's own bookkeeping, not the package's files.
BOOKKEEPING = ("var/lib/dpkg/", "var/log/", "var/cache/man/", "var/cache/debconf/", "var/cache/ldconfig/")
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "MANPAGER=cat",
       "MANWIDTH=80", "TMPDIR=/tmp", "LANG=C.UTF-8")


def live_dpkg_knows_scrun() -> bool:
    return subprocess.run(["dpkg", "-s", "scrun"], capture_output=True).returncode == 0


class FreshRoot:
    """A mount namespace held open by a sleeping process, with the overlay mounted at `root`."""

    def __init__(self, base: pathlib.Path):
        self.root, self.layers = base / "root", base / "layers"
        self.root.mkdir()
        self.layers.mkdir()
        binds = "".join(f'mkdir -p "$R{p}" && mount --rbind {p} "$R{p}" && ' for p in SHARED)
        hide = "".join(f'rm -f "$R{p}" && ' for p in MAKE_INSTALL)
        script = (f'R={self.root} L={self.layers} && mount -t tmpfs layers "$L" && mkdir "$L/upper" "$L/work" && '
                  'mount -t overlay fresh -o lowerdir=/,upperdir="$L/upper",workdir="$L/work" "$R" && '
                  f'{binds}mount -t tmpfs checkout "$R{CHECKOUT}" && {hide}echo ready && exec sleep infinity')
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()
        if line != "ready\n":
            self.holder.kill()
            raise AssertionError(f"the fresh root was not set up: {self.holder.stderr.read()[-2000:]}")

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`command` as root inside the fresh root, with a clean environment and no stdin."""
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "--", "chroot", str(self.root),
                               "env", "-i", *ENV, "sh", "-c", f"cd / && {command}"],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def changes(self) -> list[str]:
        """What the upper layer holds that the lane's system does not: new files and directories,
        changed files, and deletions (whiteouts), bookkeeping and `make install`'s launcher aside."""
        upper = f"/proc/{self.holder.pid}/root{self.layers}/upper"
        found = []
        for top, dirs, files in os.walk(upper):
            for name in dirs + files:
                path = os.path.join(top, name)
                rel = os.path.relpath(path, upper)
                lower = "/" + rel
                if rel.startswith(BOOKKEEPING) or lower in MAKE_INSTALL:
                    continue
                mode = os.lstat(path).st_mode
                if stat.S_ISCHR(mode):
                    found.append(f"deleted {lower}")
                elif not os.path.lexists(lower):
                    found.append(f"new {lower}")
                elif stat.S_ISREG(mode) and not filecmp.cmp(path, lower, shallow=False):
                    found.append(f"changed {lower}")
        return found

    def close(self) -> None:
        self.holder.send_signal(signal.SIGKILL)  # the namespace, its mounts and the layers go with it
        self.holder.wait()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    base = tmp_path_factory.mktemp("fresh-root")
    deb = subprocess.run([sys.executable, str(REPO / "tools" / "deb.py"), str(base)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert not live_dpkg_knows_scrun(), "the lane's own system has a scrun package: `dpkg --purge scrun` first"
    root = FreshRoot(base)
    try:
        hidden = " && ".join(f"test ! -e {path}" for path in (REPO / "src", *MAKE_INSTALL))
        assert root.run(hidden).returncode == 0, "the fresh root sees neither the checkout nor `make install`'s scrun"
        installed = root.run(f"dpkg -i {deb}")
        assert installed.returncode == 0, installed.stderr[-2000:]
        yield root
    finally:
        root.close()
    assert not live_dpkg_knows_scrun(), "the package reached the lane's own system"


def test_the_package_runs_the_demo_in_a_fresh_root(fresh):
    version = fresh.run("command -v scrun && scrun --version")
    assert version.returncode == 0 and version.stdout.startswith("/usr/bin/scrun\nscrun version "), version
    assert "\ncommit: " in version.stdout, "ours, not Slurm's C scrun (slurm-client's, which the package diverts)"
    demo = fresh.run(f"podman --runtime /usr/bin/scrun run --rm --network none {IMAGE} "
                     "sh -c 'echo from-the-package in job $SLURM_JOB_ID; exit 3'")
    assert demo.returncode == 3 and demo.stdout.startswith("from-the-package in job "), (demo.stdout, demo.stderr[-2000:])
    man = fresh.run("man scrun")
    assert man.returncode == 0 and man.stdout.lstrip().startswith("SCRUN(1)"), man.stderr[-500:]
    doctor = fresh.run("scrun doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_purging_the_package_leaves_nothing(fresh):
    listed = fresh.run("dpkg -L scrun")
    assert listed.returncode == 0 and "/usr/bin/scrun" in listed.stdout.split(), listed
    assert fresh.changes(), "installed, the upper layer holds the package (or this check sees nothing)"
    purged = fresh.run("dpkg --purge scrun")
    assert purged.returncode == 0 and "not empty" not in purged.stderr, purged.stderr
    assert fresh.run("dpkg -s scrun").returncode != 0, "purged: dpkg forgets it"
    assert "scrun" not in fresh.run("dpkg-divert --list").stdout.split()
    # Slurm's C scrun (slurm-client, Debian 13 on) is back as it was: no change shows for it.
    assert fresh.changes() == []
