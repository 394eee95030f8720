"""The docs' commands stay true: every fenced block marked `doctest` in README.md and docs/*.md
runs here, line by line, on each lane, and must succeed (issue 32)."""
import pathlib
import re
import subprocess

import pytest

pytestmark = pytest.mark.e2e
REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^ *```sh doctest\n(.*?)^ *```", re.MULTILINE | re.DOTALL)


def commands() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for block in BLOCK.findall(doc.read_text()):
            out += [(doc.relative_to(REPO).as_posix(), line) for line in block.splitlines() if line.strip()]
    return out


def test_the_docs_mark_commands_to_run():
    where = {doc for doc, _ in commands()}
    assert {"README.md", "docs/user-guide.md", "docs/admin-guide.md"} <= where, where


@pytest.mark.parametrize("doc,command", commands(), ids=lambda v: v if "/" in v or v.endswith(".md") else v[:40])
def test_a_documented_command_works(podman_ready, doc, command):
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{doc}: `{command}` exited {proc.returncode}: {proc.stderr[-2000:]}"
