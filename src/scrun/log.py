"""Logging: Slurm's level names on top of the standard logging module, text or JSON sinks.

Levels (Slurm's): quiet, fatal, error, info, verbose, debug, debug2 … debug5. Three sinks with
their own level: stderr (default info), the --log file (text, or JSON lines with the keys
runc/crun write: level, msg, time — containerd and podman read those to show our errors), and
syslog (off by default). Nothing is configured at import time.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import sys
import time
from collections import namedtuple
from collections.abc import Mapping

from scrun.errors import ConfigError

LEVEL_NAMES = ("quiet", "fatal", "error", "info", "verbose", "debug", "debug2", "debug3", "debug4", "debug5")
# Slurm level → logging level. quiet is above everything so nothing passes.
_PY_LEVEL = {0: 100, 1: 50, 2: 40, 3: 20, 4: 15, 5: 10, 6: 9, 7: 8, 8: 7, 9: 6}
_PY_TO_NAME = {50: "fatal", 40: "error", 30: "warning", 20: "info", 15: "verbose", 10: "debug", 9: "debug2", 8: "debug3", 7: "debug4", 6: "debug5"}
# runc/logrus level words for JSON lines.
_JSON_LEVEL = {"fatal": "fatal", "error": "error", "warning": "warning", "info": "info", "verbose": "debug"}

LOGGER_NAME = "scrun"


def parse_level(text: str) -> int:
    """`debug2` or `6` → 6. Raises ValueError naming the valid words."""
    value = text.strip().lower()
    if value.isdigit() and int(value) < len(LEVEL_NAMES):
        return int(value)
    if value in LEVEL_NAMES:
        return LEVEL_NAMES.index(value)
    raise ValueError(f"invalid log level {text!r}: use one of {', '.join(LEVEL_NAMES)} or 0-9")


class LogConfig(namedtuple("LogConfig", "stderr_level file_level syslog_level log_file log_format prog",
                           defaults=(3, 3, 0, None, "text", "scrun"))):
    """Slurm levels (0–9) of the three sinks, the --log file and its format, the name in lines."""

    __slots__ = ()


def log_config_from(env: Mapping[str, str], *, verbose: int = 0, debug: bool = False,
                    log_file: str | None = None, log_format: str | None = None,
                    oci_overrides: Mapping[str, str | None] | None = None) -> LogConfig:
    """Precedence: defaults < oci.conf *Debug < SCRUN_DEBUG < SCRUN_{STDERR,SYSLOG,FILE}_DEBUG < flags.

    Raises ValueError with the variable's name for a bad value.
    """
    stderr, file, syslog = 3, 3, 0
    for key, which in (("stdio_debug", "stderr"), ("file_debug", "file"), ("syslog_debug", "syslog")):
        value = (oci_overrides or {}).get(key)
        if value:
            level = parse_level(value)
            stderr, file, syslog = (level if which == "stderr" else stderr, level if which == "file" else file,
                                    level if which == "syslog" else syslog)

    def env_level(name: str) -> int | None:
        if name not in env or env[name] == "":
            return None
        try:
            return parse_level(env[name])
        except ValueError as exc:
            raise ValueError(f"{name}={env[name]!r}: {exc}") from None

    both = env_level("SCRUN_DEBUG")
    if both is not None:
        stderr = file = syslog = both
    for name in ("SCRUN_STDERR_DEBUG", "SCRUN_SYSLOG_DEBUG", "SCRUN_FILE_DEBUG"):
        level = env_level(name)
        if level is None:
            continue
        if name == "SCRUN_STDERR_DEBUG":
            stderr = level
        elif name == "SCRUN_SYSLOG_DEBUG":
            syslog = level
        else:
            file = level
    if debug:
        stderr = max(stderr, 5)
        file = max(file, 5)
    stderr = min(stderr + verbose, 9)
    fmt = (log_format or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"--log-format {log_format!r}: use text or json")
    return LogConfig(stderr, file, syslog, log_file, fmt)


class _TextFormatter(logging.Formatter):
    def __init__(self, prog: str, with_time: bool):
        super().__init__()
        self.prog = prog
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        name = _PY_TO_NAME.get(record.levelno, record.levelname.lower())
        prefix = "" if name == "info" else f"{name}: "
        msg = record.getMessage()
        if self.with_time:
            stamp = local_iso_time(time.time(), 3)
            return f"[{stamp}] {prefix}{msg}"
        return f"{self.prog}: {prefix}{msg}"


def local_iso_time(when: float, digits: int) -> str:
    """datetime's local isoformat (fraction truncated to `digits`), without importing datetime:
    every anchor imports this module, and datetime costs each one 0.3 MiB (bench/scale.py)."""
    moment = time.localtime(when)
    offset = time.strftime("%z", moment)
    fraction = int(when * 10 ** digits) % 10 ** digits
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', moment)}.{fraction:0{digits}d}{offset[:3]}:{offset[3:]}"


class _JsonFormatter(logging.Formatter):
    """One object per line: {"level": …, "msg": …, "time": RFC3339} like runc's logrus output."""

    def format(self, record: logging.LogRecord) -> str:
        name = _PY_TO_NAME.get(record.levelno, "debug")
        stamp = local_iso_time(record.created, 6)
        return json.dumps({"level": _JSON_LEVEL.get(name, "debug"), "msg": record.getMessage(), "time": stamp})


def open_log_file(path: str) -> int:
    """An fd appending to --log's file, opened so that nobody else's file or link is written.

    The path is the caller's, but the file at it may not be: in a directory others can write
    (/tmp) a user could put a link there to a file of root's, or a file of their own to read what
    root logs. So: links are not followed (except root's own in a root-only directory, as
    /dev/stderr), a regular file must be ours, and its mode is set through the fd."""
    import stat

    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY
    try:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP or not _root_only_link(path):
                raise
            fd = os.open(path, flags, 0o600)
    except OSError as exc:
        what = "it is a symlink, which --log does not follow" if exc.errno == errno.ELOOP else exc.strerror
        raise ConfigError(f"--log {path}: cannot open: {what}") from None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        if st.st_uid != os.getuid():
            os.close(fd)
            raise ConfigError(f"--log {path}: belongs to uid {st.st_uid}, not to you: scrun writes its log only to "
                              "a file of its own (remove it, or choose another path)")
        os.fchmod(fd, 0o600)
    return fd


def _root_only_link(path: str) -> bool:
    """A symlink of root's in a directory only root can change (/dev/stderr, /dev/log …)."""
    import stat

    try:
        link, parent = os.lstat(path), os.stat(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return link.st_uid == 0 and parent.st_uid == 0 and not parent.st_mode & 0o022 and stat.S_ISLNK(link.st_mode)


class _SafeFileHandler(logging.FileHandler):
    """FileHandler whose file is opened by open_log_file."""

    def __init__(self, path: str):
        self._fd = open_log_file(path)
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.stream = self._open()

    def _open(self):
        fd, self._fd = self._fd, None
        if fd is None:
            fd = open_log_file(self.baseFilename)
        return os.fdopen(fd, "a", encoding="utf-8")


def setup_logging(config: LogConfig, *, stderr_stream=None) -> logging.Logger:
    """Install the sinks of `config` on the `scrun` logger (replacing earlier ones)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    levels = []
    if config.stderr_level > 0:
        h = logging.StreamHandler(stderr_stream or sys.stderr)
        h.setLevel(_PY_LEVEL[config.stderr_level])
        h.setFormatter(_TextFormatter(config.prog, with_time=False))
        logger.addHandler(h)
        levels.append(_PY_LEVEL[config.stderr_level])
    if config.log_file and config.file_level > 0:
        fh = _SafeFileHandler(config.log_file)
        fh.setLevel(_PY_LEVEL[config.file_level])
        fh.setFormatter(_JsonFormatter() if config.log_format == "json" else _TextFormatter(config.prog, with_time=True))
        logger.addHandler(fh)
        levels.append(_PY_LEVEL[config.file_level])
    if config.syslog_level > 0 and os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler

        sh = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_USER)
        sh.setLevel(_PY_LEVEL[config.syslog_level])
        sh.setFormatter(logging.Formatter(f"{config.prog}[%(process)d]: %(message)s"))
        logger.addHandler(sh)
        levels.append(_PY_LEVEL[config.syslog_level])
    logger.setLevel(min(levels) if levels else 100)
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


# Slurm-named helpers so call sites read like the man page's levels.
VERBOSE = 15
DEBUG2, DEBUG3, DEBUG4, DEBUG5 = 9, 8, 7, 6


def py_level(slurm_level: int) -> int:
    return _PY_LEVEL[max(0, min(9, slurm_level))]
