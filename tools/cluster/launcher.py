"""The `scrun` executable engines run: a launcher for a Python that has scrun's dependencies.

Not pip's console script: that one imports `re` for argv[0] cosmetics. And the interpreter
starts with -S: `site` (the venv's .pth files, setuptools' distutils shim) costs ~6 ms of every
call — podman calls state/start/delete on every container — so the launcher names the two
directories site would have added: the venv's site-packages (lupa) and this checkout's src.

    python3 tools/cluster/launcher.py PYTHON DEST SRC    (what `make install` runs)
"""
from __future__ import annotations

import os
import subprocess
import sys


def launcher_text(python: str, paths: list[str]) -> str:
    return f"#!{python} -IS\nimport sys\nsys.path += {paths!r}\nfrom scrun.cli import entry\nentry()\n"


def site_packages(python: str) -> str:
    """purelib of `python` (a venv's site-packages)."""
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str]) -> int:
    python, dest, src = argv
    tmp = f"{dest}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(launcher_text(python, [site_packages(python), os.path.abspath(src)]))
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
