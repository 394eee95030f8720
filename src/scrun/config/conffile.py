"""Reader for Slurm's `Key=Value` files (slurm.conf, oci.conf), keeping file:line for errors."""
from __future__ import annotations

import glob
import os
import shlex
from collections import namedtuple

from scrun.errors import ConfigError


class ConfLine(namedtuple("ConfLine", "key value path lineno")):
    """key as written, value unquoted, and where it was (path, lineno).

    A namedtuple, like the other records on create's path: dataclasses imports inspect and
    ast (~20 ms of every create here; bench/run.py, docs/benchmarks.md's profile)."""

    __slots__ = ()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.lineno}"


def read_conf(path: str, *, allow_include: bool = True, _depth: int = 0) -> list[ConfLine]:
    """Parse `path` into lines; `Include` is followed (glob patterns allowed), comments dropped."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"cannot read {path}: No such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    out: list[ConfLine] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        if allow_include and line.lower().startswith("include ") and "=" not in line.split()[0]:
            if _depth > 10:
                raise ConfigError(f"{path}:{lineno}: Include nested too deeply")
            pattern = line.split(None, 1)[1].strip()
            if not os.path.isabs(pattern):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for inc in sorted(glob.glob(pattern)):
                out.extend(read_conf(inc, allow_include=True, _depth=_depth + 1))
            continue
        for token in _split_tokens(line, path, lineno):
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise ConfigError(f"{path}:{lineno}: expected Key=Value, got {token!r}")
            out.append(ConfLine(key.strip(), value.strip(), path, lineno))
    return out


def _strip_comment(raw: str) -> str:
    in_quote = False
    for i, ch in enumerate(raw):
        if ch == '"':
            in_quote = not in_quote
        elif ch == "#" and not in_quote:
            return raw[:i].strip()
    return raw.strip()


def _split_tokens(line: str, path: str, lineno: int) -> list[str]:
    """`A=1 B="x y"` → ['A=1', 'B=x y']; one quoted value may hold spaces."""
    try:
        lex = shlex.shlex(line, posix=True)
        lex.whitespace_split = True
        lex.commenters = ""
        return list(lex)
    except ValueError as exc:
        raise ConfigError(f"{path}:{lineno}: {exc} in {line!r}") from None
