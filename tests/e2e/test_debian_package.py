"""The Debian package (issue 32): built from this checkout by tools/deb.py, installed with dpkg on
each lane's own system, it runs the demo with the checkout out of sight (a mount namespace with an
empty tmpfs over it), its man page renders, `scrun doctor` passes; purged, nothing of it is left."""
import pathlib
import subprocess
import sys

import pytest

from conftest import IMAGE

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[2]
FILES = ("/usr/bin/scrun", "/usr/lib/scrun", "/usr/share/man/man1/scrun.1.gz", "/usr/share/man/man5/scrun.conf.5.gz",
         "/usr/share/doc/scrun")


def installed() -> bool:
    """dpkg knows the package at all (a failed install leaves it "not-installed", still to purge)."""
    return subprocess.run(["dpkg", "-s", "scrun"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    deb = subprocess.run([sys.executable, str(REPO / "tools" / "deb.py"), str(out)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    if installed():  # an earlier run cut short
        subprocess.run(["dpkg", "--purge", "scrun"], capture_output=True, check=True, timeout=120)
    proc = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    yield deb
    if installed():
        subprocess.run(["dpkg", "--purge", "scrun"], capture_output=True, timeout=120)


def without_checkout(command: str) -> subprocess.CompletedProcess:
    """`command` in a mount namespace where the checkout's filesystem (/work here) is an empty tmpfs."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f'mount -t tmpfs none "$0" && cd / && {command}', str(REPO.parent)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "MANPAGER": "cat",
                               "MANWIDTH": "80", "TMPDIR": "/tmp"})


def test_the_package_runs_the_demo_without_the_checkout(package):
    version = without_checkout("/usr/bin/scrun --version; test ! -e " + str(REPO / "src"))
    assert version.returncode == 0 and version.stdout.startswith("scrun version "), version
    assert "\ncommit: " in version.stdout, "ours, not Slurm's C scrun (slurm-client's, which the package diverts)"
    demo = without_checkout(f"podman --runtime /usr/bin/scrun run --rm --network none {IMAGE} "
                            "sh -c 'echo from-the-package in job $SLURM_JOB_ID; exit 3'")
    assert demo.returncode == 3 and demo.stdout.startswith("from-the-package in job "), (demo.stdout, demo.stderr[-2000:])
    man = without_checkout("man scrun")
    assert man.returncode == 0 and man.stdout.lstrip().startswith("SCRUN(1)"), man.stderr[-500:]
    doctor = without_checkout("/usr/bin/scrun doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def owner(path: str) -> str:
    """The package dpkg says `path` belongs to now ("" for none), diversions aside."""
    out = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("diversion ")]
    return lines[0].split(":", 1)[0] if lines else ""


def test_purging_the_package_leaves_nothing(package):
    listed = subprocess.run(["dpkg", "-L", "scrun"], capture_output=True, text=True, check=True).stdout.split()
    assert "/usr/bin/scrun" in listed
    proc = subprocess.run(["dpkg", "--purge", "scrun"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "not empty" not in proc.stderr, proc.stderr
    assert subprocess.run(["dpkg", "-s", "scrun"], capture_output=True).returncode != 0, "purged: dpkg forgets it"
    assert "scrun" not in subprocess.run(["dpkg-divert", "--list"], capture_output=True, text=True).stdout.split()
    # Slurm's C scrun (slurm-client, Debian 13 on) is back where it was; nothing else is there.
    left = [path for path in (*FILES, *listed) if path.startswith(FILES) and pathlib.Path(path).exists()
            and owner(path) != "slurm-client"]
    assert not left, left
