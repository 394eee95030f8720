"""A lane in private namespaces: another Debian's rootfs, its own network, mounts, pids, hostname.

Layout on the host:
    /var/lib/scrun-lanes/<lane>/rootfs     the rootfs (mmdebstrap, Debian's archive)
    /var/lib/scrun-lanes/<lane>/lane.log   output of the lane's init and of the rootfs build
    /run/scrun-lanes/<lane>.pid            pid of the `unshare` holding the namespaces
    /run/scrun-lanes/<lane>.share          the host folder bound at the same path inside

The lane's init is `catatonit -P` after a pivot_root (a chrooted process could not create
user namespaces, which rootless podman needs). Stopping it SIGKILLs everything in the pid
namespace and the mounts vanish with the mount namespace: `down` leaves nothing.
"""
from __future__ import annotations

import os
import pathlib
import platform
import shutil
import signal
import subprocess
import time

from cluster.lanes import LaneSpec
from cluster.launcher import launcher_text
from cluster.packages import SUITE_APT_OPTIONS
from cluster.shell import ClusterError, log_tail, run, say, write_if_changed
from cluster.target import Namespaced

LIB = pathlib.Path("/var/lib/scrun-lanes")
RUN = pathlib.Path("/run/scrun-lanes")
VENV = "/opt/scrun-venv"
WHEELS = "/opt/scrun-wheels"

# Runs in the new namespaces as root, before the pivot: $1 rootfs, $2 hostname, $3 address,
# $4 host folder to share at the same path, $5 cgroup tree to show as /sys/fs/cgroup.
INIT_SCRIPT = r"""
set -eu
R=$1
ip link set lo up
# glibc's AI_ADDRCONFIG ignores 127.0.0.1: without a second address getaddrinfo finds no
# IPv4 at all and slurmctld/slurmd cannot resolve or bind.
ip addr add "$3/32" dev lo
hostname "$2"
mount --make-rprivate /
# crun needs the new root to be a mount point ("set propagation for '/'").
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind "$5" "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=755 tmpfs "$R/run"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
mkdir -p "$R$4"
mount --rbind "$4" "$R$4"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
echo "lane init ready"
exec catatonit -P
"""


class NamespaceLane:
    def __init__(self, spec: LaneSpec):
        self.spec = spec
        self.home = LIB / spec.name
        self.rootfs = self.home / "rootfs"
        self.log = self.home / "lane.log"
        self.pidfile = RUN / f"{spec.name}.pid"
        self.sharefile = RUN / f"{spec.name}.share"

    # ------------------------------------------------------------ rootfs

    def ensure_rootfs(self, packages: list[str]) -> None:
        """Build the rootfs with mmdebstrap unless one with these packages is there already."""
        stamp = self.rootfs / ".scrun-lane"
        wanted = f"{self.spec.suite}\n{' '.join(sorted(packages))}\n"
        if stamp.exists() and stamp.read_text() == wanted:
            return
        if self.target() is not None:
            self.stop()
        new = self.home / "rootfs.new"
        shutil.rmtree(new, ignore_errors=True)
        self.home.mkdir(parents=True, exist_ok=True)
        say(f"[{self.spec.name}] building a Debian {self.spec.debian} ({self.spec.suite}) rootfs with mmdebstrap (~1 min)")
        t0 = time.monotonic()
        with open(self.log, "w") as log:
            aptopts = [f"--aptopt={o}" for o in SUITE_APT_OPTIONS.get(self.spec.suite, [])]
            proc = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={','.join(sorted(packages))}",
                                   *aptopts, self.spec.suite, str(new)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            shutil.rmtree(new, ignore_errors=True)
            raise ClusterError(f"mmdebstrap {self.spec.suite} failed (exit {proc.returncode}; is Debian's archive reachable?)\n  {log_tail(self.log)}")
        (new / ".scrun-lane").write_text(wanted)
        shutil.rmtree(self.rootfs, ignore_errors=True)
        os.replace(new, self.rootfs)
        say(f"[{self.spec.name}] rootfs ready in {time.monotonic() - t0:.0f}s ({self.rootfs})")

    # ------------------------------------------------------------ namespaces

    def _holder_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
            comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == "unshare" else None

    @staticmethod
    def _init_of(holder: int) -> int | None:
        try:
            children = pathlib.Path(f"/proc/{holder}/task/{holder}/children").read_text().split()
            pid = int(children[0])
            comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if comm == "catatonit" else None

    def target(self) -> Namespaced | None:
        """The running lane, or None."""
        holder = self._holder_pid()
        init = self._init_of(holder) if holder else None
        return Namespaced(self.spec.name, init) if init else None

    def shared(self) -> str | None:
        try:
            return self.sharefile.read_text().strip()
        except OSError:
            return None

    def start(self, share: str, cgroup_source: str) -> Namespaced:
        """Start the lane (or keep it, if it runs and shares `share`)."""
        current = self.target()
        if current is not None and self.shared() == share and current.path(share).is_dir():
            return current
        if current is not None:
            say(f"[{self.spec.name}] restarting the lane to share {share}")
            self.stop()
        self._write_etc()
        # Every start is a fresh boot: jobs saved by the last one have no processes any more and
        # would stay RUNNING for ever (no InactiveLimit), holding CPUs.
        for state in ("var/lib/slurm/slurmctld", "var/lib/slurm/slurmd"):
            shutil.rmtree(self.rootfs / state, ignore_errors=True)
        RUN.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            holder = subprocess.Popen(
                ["unshare", "--net", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--",
                 "sh", "-c", INIT_SCRIPT, "lane-init", str(self.rootfs), self.spec.hostname, self.spec.address,
                 share, cgroup_source],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pidfile.write_text(f"{holder.pid}\n")
        self.sharefile.write_text(share + "\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            init = self._init_of(holder.pid)
            if init is not None:
                return Namespaced(self.spec.name, init)
            if holder.poll() is not None:
                break
            time.sleep(0.02)
        self._kill_holder(holder.pid)
        raise ClusterError(f"lane {self.spec.name} did not start (exit {holder.poll()})\n  {log_tail(self.log)}")

    def _write_etc(self) -> None:
        etc = self.rootfs / "etc"
        write_if_changed(etc / "hosts", f"127.0.0.1\tlocalhost\n{self.spec.address}\t{self.spec.hostname}\n"
                                         "::1\tlocalhost ip6-localhost ip6-loopback\n")
        write_if_changed(etc / "hostname", self.spec.hostname + "\n")

    def stop(self) -> None:
        holder = self._holder_pid()
        if holder is None:
            self.pidfile.unlink(missing_ok=True)
            return
        self._kill_holder(holder)
        self.pidfile.unlink(missing_ok=True)
        self.sharefile.unlink(missing_ok=True)

    def _kill_holder(self, holder: int) -> None:
        # SIGKILL to the lane's init ends every process in its pid namespace; `unshare
        # --kill-child` then exits, and with the last process the mount namespace goes.
        init = self._init_of(holder)
        for pid in filter(None, (init, holder)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pathlib.Path(f"/proc/{holder}").exists():
            try:
                os.waitpid(holder, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.02)

    # ------------------------------------------------------------ Python and scrun

    def ensure_python(self, t: Namespaced, pip: str, requirements: list[str], repo: pathlib.Path) -> None:
        """The lane's own Python with scrun's dependencies, and scrun from this checkout."""
        python = f"{VENV}/bin/python3"
        if not t.path(python).exists():
            t.run(["python3", "-m", "venv", VENV], timeout=120)
        stamp = t.path(f"{VENV}/.scrun-requirements")
        wanted = "\n".join(requirements) + "\n"
        if not stamp.exists() or stamp.read_text() != wanted:
            self._install_wheels(t, pip, requirements)
            stamp.write_text(wanted)
        site = t.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], timeout=30).stdout.strip()
        # What `pip install -e` would leave, without needing setuptools or a network in the lane.
        write_if_changed(t.path(f"{site}/scrun-checkout.pth"), f"{repo / 'src'}\n")
        write_if_changed(t.path("/usr/local/bin/scrun"), launcher_text(python, [site, str(repo / "src")]), mode=0o755)

    def _install_wheels(self, t: Namespaced, pip: str, requirements: list[str]) -> None:
        # The lane has no network: the host's pip fetches wheels for the lane's Python.
        version = t.run([f"{VENV}/bin/python3", "-c", "import sys; print('%d%d' % sys.version_info[:2])"], timeout=30).stdout.strip()
        arch = platform.machine()
        # The rootfs path, not /proc/<init>/root: pip resolves that link to the host's own /.
        wheels = self.rootfs / WHEELS.lstrip("/")
        wheels.mkdir(parents=True, exist_ok=True)
        say(f"[{self.spec.name}] installing {', '.join(requirements)} for Python {version[0]}.{version[1:]}")
        platforms = [f"--platform={p}_{arch}" for p in ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34")]
        run([pip, "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
             f"--python-version={version}", "--implementation=cp", *platforms, "--dest", str(wheels), *requirements],
            timeout=600)
        t.run([f"{VENV}/bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
               "--find-links", WHEELS, *requirements], timeout=600)
