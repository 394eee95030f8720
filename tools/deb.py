"""Build scrun's Debian package from this checkout (issue 32):

    python3 tools/deb.py [OUTDIR]      → OUTDIR/scrun_<version>_all.deb (default: dist/)

One package for Debian 12, 13 and unstable (pure Python, Architecture: all). It installs:
    /usr/bin/scrun                  the launcher: the system python3 with -I -S (start-up as fast
                                    as the checkout's launcher), scrun from /usr/lib/scrun
    /usr/lib/scrun/scrun/           the package
    /usr/share/man/man1/scrun.1.gz, man5/scrun.conf.5.gz
    /usr/share/doc/scrun/           copyright, changelog, examples (scrun.conf, scrun.lua)
and nothing under /etc and nothing that touches a running cluster: a site writes its
scrun.conf (or scrun.lua) itself. Where slurm-client has Slurm's C scrun (Debian 13 on), that
one is diverted to /usr/bin/scrun.slurm-client while this package is installed. Depends on python3 (>= 3.11) and slurm-client. lupa (for a
site's scrun.lua) is python3-lupa from Debian 13 on; Debian 12's python3-lupa is 1.14, which
lacks the Lua 5.4 runtime scrun needs, so there `pip install 'lupa>=2'` gives it (Recommends).
Standard library and dpkg-deb only.
"""
from __future__ import annotations

import gzip
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
LIB = "usr/lib/scrun"

LAUNCHER = f"""#!/usr/bin/python3 -IS
# scrun's launcher (Debian package): -I -S keep the user's site and environment out and start fast.
import sys
sys.dont_write_bytecode = True  # postinst compiled it; nothing dpkg does not know of in /{LIB}
sys.path[:0] = ["/{LIB}"]
sys.path.append("/usr/lib/python3/dist-packages")  # python3-lupa, for a site's scrun.lua
from scrun.cli import entry
entry()
"""

EXAMPLE_CONF = """# /etc/slurm/scrun.conf: scrun's own settings (man scrun.conf). Slurm's daemons never read it.
# A directory every compute node mounts: bundles the nodes cannot see are copied there.
#StageDir=/scratch/scrun
# Directories every node sees at the same path (bundles there run in place).
#SharedPaths=/scratch,/home
# Each image's rootfs copied once per user, later containers run from it.
#ImageCache=/scratch/scrun-images
#ImageCacheSize=50G
"""


# Debian 13's slurm-client ships Slurm's C scrun as /usr/bin/scrun, with its scrun.1: this
# package diverts both (to *.slurm-client) while it is installed, and puts them back when removed.
DIVERTED = ("/usr/bin/scrun", "/usr/share/man/man1/scrun.1.gz")
PREINST = "#!/bin/sh\nset -e\nif [ \"$1\" = install ] || [ \"$1\" = upgrade ]; then\n" + "".join(
    f"  dpkg-divert --package scrun --add --rename --divert {path}.slurm-client {path} >/dev/null\n"
    for path in DIVERTED) + "fi\n"
POSTRM = "#!/bin/sh\nset -e\ncase \"$1\" in remove|purge|abort-install|disappear)\n" + "".join(
    f"  dpkg-divert --package scrun --remove --rename --divert {path}.slurm-client {path} >/dev/null\n"
    for path in DIVERTED) + ";;\nesac\n"

# Bytecode for the installed python3 (as py3compile does), and gone before the files are.
POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then python3 -m compileall -q /{LIB} >/dev/null; fi
"""
PRERM = f"""#!/bin/sh
set -e
find /{LIB} -name __pycache__ -type d -prune -exec rm -rf {{}} +
"""


def version() -> str:
    sys.path.insert(0, str(REPO / "src"))
    from scrun import __version__

    return __version__


def control(ver: str, size_kib: int) -> str:
    return f"""Package: scrun
Version: {ver}
Architecture: all
Maintainer: scrun developers <scrun@localhost>
Installed-Size: {size_kib}
Depends: python3 (>= 3.11), slurm-client
Recommends: python3-lupa (>= 2.0), crun
Suggests: podman, docker.io
Section: admin
Priority: optional
Homepage: https://slurm.schedmd.com/scrun.html
Description: OCI runtime that runs podman and docker containers as Slurm jobs
 scrun is called by podman (through conmon) and docker (through containerd's
 shim) as runc or crun would be. It runs each container as a Slurm job: create
 gets an allocation and stages the bundle where the compute nodes see it, start
 launches the step with srun --container, and the container's exit code, stdio
 and terminal reach the engine as with a local runtime.
"""


def build(outdir: pathlib.Path) -> pathlib.Path:
    ver = version()
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp) / "scrun"
        shutil.copytree(REPO / "src" / "scrun", root / LIB / "scrun",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        launcher = root / "usr/bin/scrun"
        launcher.parent.mkdir(parents=True)
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        for page, section in (("scrun.1", 1), ("scrun.conf.5", 5)):
            target = root / f"usr/share/man/man{section}/{page}.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.compress((REPO / "man" / page).read_bytes(), mtime=0))
        doc = root / "usr/share/doc/scrun"
        (doc / "examples").mkdir(parents=True)
        (doc / "changelog.gz").write_bytes(gzip.compress((REPO / "CHANGELOG.md").read_bytes(), mtime=0))
        (doc / "copyright").write_text("scrun: GPL-2.0-or-later (pyproject.toml).\n")
        (doc / "examples" / "scrun.conf").write_text(EXAMPLE_CONF)
        shutil.copy(REPO / "tools" / "cluster" / "scrun.lua", doc / "examples" / "scrun.lua")
        for path in root.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
            elif path != launcher:
                path.chmod(0o644)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) // 1024 + 1
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN" / "control").write_text(control(ver, size))
        for name, text in (("preinst", PREINST), ("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
            (root / "DEBIAN" / name).write_text(text)
            (root / "DEBIAN" / name).chmod(0o755)
        outdir.mkdir(parents=True, exist_ok=True)
        deb = outdir / f"scrun_{ver}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)], check=True,
                       capture_output=True)
    return deb


if __name__ == "__main__":
    print(build(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "dist"))
