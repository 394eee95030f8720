"""Signal argument grammar of `kill` (runc's parseSignal, plus names upstream scrun forgot)."""
from __future__ import annotations

# _signal, not signal: the latter imports enum, which `kill` should not pay for.
import _signal

from scrun.errors import InvalidInputError

# Signals whose default action is to ignore them: sending one to a container that has not
# started yet must not be treated as terminating it.
IGNORED_BY_DEFAULT = frozenset({_signal.SIGCHLD, _signal.SIGCONT, _signal.SIGURG, _signal.SIGWINCH})
# Canonical name per number where Linux has aliases (SIGIOT=SIGABRT, SIGCLD=SIGCHLD, SIGPOLL=SIGIO).
_ALIASES = {"SIGIOT", "SIGCLD", "SIGPOLL"}
_BY_NAME = {n: getattr(_signal, n) for n in dir(_signal)
            if n.startswith("SIG") and not n.startswith("SIG_") and n not in ("SIGRTMIN", "SIGRTMAX")}
_BY_NUMBER = {num: name for name, num in sorted(_BY_NAME.items()) if name not in _ALIASES}


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3` → signal number; anything else is an error."""
    raw = text.strip()
    if not raw:
        raise InvalidInputError("empty signal: pass a name like TERM or a number like 15")
    if raw.isdigit():
        num = int(raw)
        if not 1 <= num <= _signal.SIGRTMAX:
            raise InvalidInputError(f"invalid signal {text!r}: numbers go from 1 to {int(_signal.SIGRTMAX)}")
        return num
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name != base:
            offset = name[len(base):]
            try:
                num = getattr(_signal, base) + int(offset)
            except ValueError:
                break
            if _signal.SIGRTMIN <= num <= _signal.SIGRTMAX:
                return int(num)
            break
    if name in _BY_NAME:
        return int(_BY_NAME[name])
    raise InvalidInputError(f"unknown signal {text!r}: use a name like TERM, SIGKILL or a number like 9")


def signal_name(num: int) -> str:
    return _BY_NUMBER.get(num, str(num))
