"""The only code that writes to stdout (besides --version/--help): podman and go-runc parse it."""
from __future__ import annotations

import json
import sys
from typing import Any


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()
