"""The wheel (issue 32): built from this checkout without a network, installed into a fresh venv,
it is a working scrun — `--version`, and a real `podman run` through it with the exit code."""
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import IMAGE

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> pathlib.Path:
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy: building writes build/ and *.egg-info beside the sources, which are not the test's to touch.
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "build", "*.egg-info",
                                                                 "__pycache__", "bench"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheels = list((tmp / "dist").glob("scrun-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "scrun/cli/__init__.py" in names and not any(n.startswith(("tests/", "tools/")) for n in names), names[:20]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    # --no-deps: lupa is for sites with a scrun.lua; this cluster stages with scrun.conf.
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", "-q",
                              "--disable-pip-version-check", str(wheels[0])], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def test_the_installed_wheel_says_its_version(wheel_venv):
    from scrun import __version__

    proc = subprocess.run([str(wheel_venv / "bin" / "scrun"), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(f"scrun version {__version__}\n"), proc
    assert "\nslurm: slurm" in proc.stdout, proc.stdout


def test_man_finds_the_installed_pages(wheel_venv):
    """man-db looks in <prefix>/share/man for a bin/ on PATH: `man scrun` after installing the wheel."""
    env = {"PATH": f"{wheel_venv / 'bin'}:/usr/bin:/bin", "MANPAGER": "cat", "MANWIDTH": "80"}
    for page, title in (("scrun", "SCRUN(1)"), ("scrun.conf", "SCRUN.CONF(5)")):
        proc = subprocess.run(["man", page], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0 and proc.stdout.lstrip().startswith(title), (page, proc.stderr[-500:])
        assert str(wheel_venv) in subprocess.run(["man", "-w", page], capture_output=True, text=True, env=env).stdout


def test_podman_runs_a_container_through_the_installed_wheel(wheel_venv, podman_ready):
    scrun = wheel_venv / "bin" / "scrun"
    proc = subprocess.run(["podman", "--runtime", str(scrun), "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                           "echo from-the-wheel; exit 3"], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stdout) == (3, "from-the-wheel\n"), proc.stderr[-2000:]
