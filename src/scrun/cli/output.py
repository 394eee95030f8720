"""The only code that writes to stdout (besides --version/--help): podman and go-runc parse it."""
from __future__ import annotations

import sys

from scrun import fastjson


def print_text(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def print_json(doc: object) -> None:
    sys.stdout.write(fastjson.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()
