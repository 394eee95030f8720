"""The network-namespace holder's hand-over across its exec (anchor/netnsholder.py): the fds it
keeps land on 3, 4, … whatever numbers they had, inheritable, and nothing else stays open."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

# In a child of its own (_detach calls setsid and closes fds): the pidfd may already be fd 3
# (dup2 onto itself would keep close-on-exec) and the ready pipe's end any number.
PROBE = """
import fcntl, os, sys
from scrun.anchor.netnsholder import _detach
os.closerange(3, 1 << 20)
if sys.argv[1] == "three-first":
    first = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)        # fd 3
    r, w = os.pipe()                                                 # 4, 5
else:
    r, w = os.pipe()                                                 # 3, 4
    first = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)        # 5
kept = _detach([first, w] if sys.argv[1] != "none" else [None, w])
still = {}
for fd in range(3, 64):
    try:
        still[fd] = (os.readlink(f"/proc/self/fd/{fd}").split("[")[0], os.get_inheritable(fd))
    except OSError:
        pass
with open(sys.argv[2], "w") as out:  # stdout is /dev/null now
    out.write(repr((kept, still)))
"""


@pytest.mark.parametrize("order", ["three-first", "pipe-first", "none"])
def test_the_holder_keeps_its_fds_on_three_and_four(order, tmp_path):
    out = tmp_path / "fds"
    proc = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + PROBE, order,
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    kept, still = ast.literal_eval(out.read_text())
    if order == "none":
        assert kept == [None, 4] and still == {4: ("pipe:", True)}
    else:
        assert kept == [3, 4] and still == {3: ("/dev/null", True), 4: ("pipe:", True)}
