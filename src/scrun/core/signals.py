"""Signal argument grammar of `kill` (runc's parseSignal, plus names upstream scrun forgot)."""
from __future__ import annotations

import signal

from scrun.errors import InvalidInputError

# Signals whose default action is to ignore them: sending one to a container that has not
# started yet must not be treated as terminating it.
IGNORED_BY_DEFAULT = frozenset({signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH})


def parse_signal(text: str) -> int:
    """`9`, `KILL`, `SIGKILL`, `sigkill`, `RTMIN+3` → signal number; anything else is an error."""
    raw = text.strip()
    if not raw:
        raise InvalidInputError("empty signal: pass a name like TERM or a number like 15")
    if raw.isdigit():
        num = int(raw)
        if not 1 <= num <= signal.SIGRTMAX:
            raise InvalidInputError(f"invalid signal {text!r}: numbers go from 1 to {int(signal.SIGRTMAX)}")
        return num
    name = raw.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base in ("SIGRTMIN", "SIGRTMAX"):
        if name.startswith(base) and name != base:
            offset = name[len(base):]
            try:
                num = getattr(signal, base) + int(offset)
            except ValueError:
                break
            if signal.SIGRTMIN <= num <= signal.SIGRTMAX:
                return int(num)
            break
    sig = getattr(signal.Signals, name, None) if name.isidentifier() else None
    if isinstance(sig, signal.Signals):
        return int(sig)
    raise InvalidInputError(f"unknown signal {text!r}: use a name like TERM, SIGKILL or a number like 9")


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)
