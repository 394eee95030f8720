"""The man pages are what the code says (tools/manpage.py writes them from the --help grammar,
the SCRUN_* option table, the error classes and the scrun.lua host) and render cleanly."""
import pathlib
import subprocess
import sys

from scrun.cli.args import build_parser
from scrun.core.options import OPTION_TABLE

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_the_pages_are_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "manpage.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_scrun_1_names_every_verb_and_variable():
    text = (REPO / "man" / "scrun.1").read_text().replace("\\-", "-")
    assert all(f".SS {verb}" in text for verb in ("create", "start", "state", "kill", "delete", "pause", "exec", "cache"))
    assert all(f"\\fB{row.env}\\fR" in text for row in OPTION_TABLE), "every SCRUN_* of the option table"
    assert build_parser().usage.replace("\\-", "-") in text


def test_the_pages_render_without_warnings():
    for page in ("scrun.1", "scrun.conf.5"):
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(REPO / "man" / page)],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", (page, proc.stderr)
