"""The one Settings object of a scrun process, and where each value comes from.

Precedence, lowest first: built-in defaults < slurm.conf < oci.conf < SCRUN_* environment <
command-line flags. Only `create` needs slurm.conf and oci.conf; the other verbs work from the
container's record, so they keep working under podman's minimal environment.
"""
from __future__ import annotations

import os
import re
from collections import namedtuple
from types import MappingProxyType

from scrun.config.conffile import ConfLine, read_conf
from scrun.config.defaults import LUA_TIMEOUT_DEFAULT, resolve_slurm_conf
from scrun.core.staging import under
from scrun.errors import ConfigError

TYPE_CHECKING = False  # not typing's: its import is ~7 ms of create
if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrun.core.identity import Identity

_OCI_BOOL = {"true", "yes", "y", "1"}
_OCI_FALSE = {"false", "no", "n", "0"}
_RUNTIME_KEYS = ("runtimecreate", "runtimedelete", "runtimekill", "runtimequery", "runtimerun", "runtimestart")
# oci.conf keys: the node side (slurmstepd) uses most of them; scrun only needs SrunPath/SrunArgs
# and the debug overrides, but it checks all so a typo is reported with file:line.
# The oci.conf keys scrun itself acts on; the others are for slurmstepd on the nodes.
SCRUN_OCI_KEYS = frozenset({"srunpath", "srunargs", "stdiodebug", "filedebug", "syslogdebug"})
OCI_KEYS = {
    "containerpath", "createenvfile", "debugflags", "disablecleanup", "disablehooks", "envexclude",
    "filedebug", "ignorefileconfigjson", "mountspooldir", "runtimeenvexclude", "srunpath", "srunargs",
    "stdiodebug", "syslogdebug", *_RUNTIME_KEYS,
}


class OciConf(namedtuple("OciConf", "path srun_path srun_args disable_cleanup ignore_file_config_json stdio_debug "
                              "file_debug syslog_debug debug_flags raw",
                              defaults=("srun", (), False, False, None, None, None, None, MappingProxyType({})))):
    """oci.conf as scrun uses it. path None: there is none next to slurm.conf. raw: every key
    (lower case) → value. A namedtuple, not a dataclass: see config.conffile.ConfLine."""

    __slots__ = ()


def _bool(line: ConfLine) -> bool:
    v = line.value.lower()
    if v in _OCI_BOOL:
        return True
    if v in _OCI_FALSE:
        return False
    raise ConfigError(f"{line.where}: {line.key}={line.value!r} is not a boolean (use true or false)")


def parse_oci_conf(path: str) -> OciConf:
    """Read oci.conf with the same validation slurmstepd applies (so errors show up at create)."""
    lines = read_conf(path, allow_include=False)
    raw: dict[str, str] = {}
    srun_args: list[str] = []
    fields: dict[str, object] = {}
    for line in lines:
        key = line.key.lower()
        if key not in OCI_KEYS:
            raise ConfigError(f"{line.where}: unknown oci.conf key {line.key!r} (see oci.conf(5))")
        raw[key] = line.value
        if key == "srunargs":
            srun_args.append(line.value)
        elif key == "srunpath":
            if not os.path.isabs(line.value):
                raise ConfigError(f"{line.where}: SrunPath must be an absolute path, got {line.value!r}")
            fields["srun_path"] = line.value
        elif key == "disablecleanup":
            fields["disable_cleanup"] = _bool(line)
        elif key == "ignorefileconfigjson":
            fields["ignore_file_config_json"] = _bool(line)
        elif key in ("stdiodebug", "filedebug", "syslogdebug"):
            from scrun.log import parse_level

            try:
                parse_level(line.value)
            except ValueError as exc:
                raise ConfigError(f"{line.where}: {line.key}: {exc}") from None
            fields[{"stdiodebug": "stdio_debug", "filedebug": "file_debug", "syslogdebug": "syslog_debug"}[key]] = line.value
        elif key == "debugflags":
            fields["debug_flags"] = line.value
        elif key in ("envexclude", "runtimeenvexclude"):
            try:
                re.compile(line.value)
            except re.error as exc:
                raise ConfigError(f"{line.where}: {line.key} is not a valid regular expression: {exc}") from None
        elif key == "createenvfile":
            if line.value.lower() not in {"null", "newline", "disabled", *_OCI_BOOL, *_OCI_FALSE}:
                raise ConfigError(f"{line.where}: CreateEnvFile must be null, newline or disabled")
    ignore = bool(fields.get("ignore_file_config_json"))
    present = {k for k in _RUNTIME_KEYS if k in raw}
    if not ignore:
        if not present:
            raise ConfigError(f"{path}: no RunTime* command is set (set RunTimeRun, or the create/start set)")
        run_mode = {"runtimerun", "runtimedelete", "runtimekill"} <= present and not present & {"runtimecreate", "runtimestart"}
        cs_mode = {"runtimecreate", "runtimedelete", "runtimekill", "runtimequery", "runtimestart"} <= present and "runtimerun" not in present
        if not (run_mode or cs_mode):
            raise ConfigError(
                f"{path}: RunTime* keys {sorted(present)} do not form a valid set: use RunTimeRun+Kill+Delete "
                "or RunTimeCreate+Start+Query+Kill+Delete"
            )
    return OciConf(path=path, srun_args=tuple(srun_args), raw=raw, **fields)  # type: ignore[arg-type]


def load_node_config(slurm_conf: str) -> OciConf:
    """Check slurm.conf is readable and load oci.conf next to it (a missing oci.conf is not fatal here)."""
    try:
        with open(slurm_conf, "rb"):
            pass
    except OSError as exc:
        reason = "No such file" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise ConfigError(f"cannot read {slurm_conf}: {reason} (set SLURM_CONF or pass -f)") from None
    oci_path = os.path.join(os.path.dirname(slurm_conf), "oci.conf")
    if not os.path.exists(oci_path):
        return OciConf(path=None)
    return parse_oci_conf(oci_path)




class SiteStaging(namedtuple("SiteStaging", "stage_dir shared_paths node_guard image_cache image_cache_size",
                             defaults=(None, (), True, None, None))):
    """scrun.conf's staging: StageDir (copies for the nodes, None: no built-in staging), the
    directories every compute node shares at the same path (StageDir among them), NodeGuard
    (core.nodeguard; `NodeGuard=no` saves its 10-35 ms per step where every node has oci.conf)
    ImageCache (core.imagecache: each user's images copied once, there; None: per container) and
    ImageCacheSize (bytes each user's entries may take: the least recently used beyond it go)."""

    __slots__ = ()


SCRUN_CONF_NAME = "scrun.conf"
_SCRUN_CONF_KEYS = {"stagedir", "sharedpaths", "nodeguard", "imagecache", "imagecachesize", "anchorserver"}


def load_site_staging(slurm_conf: str) -> SiteStaging:
    """scrun's own site file, next to slurm.conf (Slurm's daemons read oci.conf and refuse keys
    they do not know, so scrun's settings live apart): `StageDir=/scratch/scrun` and
    `SharedPaths=/home,/scratch`. No file: no built-in staging."""
    path = os.path.join(os.path.dirname(slurm_conf), SCRUN_CONF_NAME)
    if not os.path.exists(path):
        return SiteStaging()
    stage_dir, shared, guard, cache, cache_size = None, [], True, None, None
    for line in read_conf(path, allow_include=False):
        key = line.key.lower()
        if key not in _SCRUN_CONF_KEYS:
            raise ConfigError(f"{line.where}: unknown scrun.conf key {line.key!r} (StageDir, SharedPaths, NodeGuard, "
                              "ImageCache, ImageCacheSize, AnchorServer)")
        if key in ("nodeguard", "anchorserver"):
            if line.value.lower() not in ("yes", "no"):
                raise ConfigError(f"{line.where}: {line.key} must be yes or no, got {line.value!r}")
            if key == "nodeguard":
                guard = line.value.lower() == "yes"
            continue  # AnchorServer: read before create's imports (anchor/served.anchor_server_wanted)
        if key == "imagecachesize":
            cache_size = parse_size(line.value)
            if cache_size is None:
                raise ConfigError(f"{line.where}: ImageCacheSize must be a size (e.g. 50G, 512M), got {line.value!r}")
            continue
        values = [v.strip() for v in line.value.replace(":", ",").split(",") if v.strip()]
        if not values or any(not os.path.isabs(v) for v in values):
            raise ConfigError(f"{line.where}: {line.key} must name absolute paths, got {line.value!r}")
        if key == "stagedir":
            if len(values) != 1 or not os.path.isdir(values[0]):
                raise ConfigError(f"{line.where}: StageDir {line.value}: not a directory (make it on a filesystem "
                                  "every compute node mounts at the same path)")
            stage_dir = os.path.normpath(values[0])
        elif key == "imagecache":
            if len(values) != 1 or not os.path.isdir(values[0]):
                raise ConfigError(f"{line.where}: ImageCache {line.value}: not a directory (make it, 1777, on a "
                                  "filesystem every compute node mounts at the same path)")
            cache = (os.path.normpath(values[0]), line.where)
        else:
            shared += [os.path.normpath(v) for v in values]
    if shared and stage_dir is None:
        raise ConfigError(f"{path}: SharedPaths without StageDir: set StageDir (where copies go) too")
    if stage_dir is not None and stage_dir not in shared:
        shared.append(stage_dir)
    if cache is not None and (stage_dir is None or not under(cache[0], tuple(shared))):
        raise ConfigError(f"{cache[1]}: ImageCache {cache[0]} must be under SharedPaths (the nodes read its entries), "
                          "with StageDir set")
    return SiteStaging(stage_dir, tuple(shared), guard, cache[0] if cache else None, cache_size)


def parse_size(text: str) -> int | None:
    """Bytes of `50G`, `512M`, `1024` (binary units, as Slurm's memory sizes); None if not a size."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([KMGTkmgt]?)[iI]?[bB]?\s*", text)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()] if m else None


class Settings(namedtuple("Settings", "root root_note slurm_conf log env identity lua_timeout",
                          defaults=(LUA_TIMEOUT_DEFAULT,))):
    """Everything a verb needs to know about its environment, decided once per process:
    root (root_note: set when the default root had to fall back), slurm_conf, log (LogConfig),
    env, identity (our ids, and the real ones outside a user namespace), lua_timeout.
    Immutable (a namedtuple, for create's start-up time: see config.conffile.ConfLine)."""

    __slots__ = ()


def lua_timeout_from(env: Mapping[str, str]) -> float:
    """SCRUN_LUA_TIMEOUT: seconds a scrun.lua hook (load, stage_in, stage_out, each) may run."""
    raw = env.get("SCRUN_LUA_TIMEOUT", "")
    if not raw:
        return LUA_TIMEOUT_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 10 ** 7:
        raise ConfigError(f'SCRUN_LUA_TIMEOUT="{raw}": not a number of seconds > 0 (unset it for '
                          f"{LUA_TIMEOUT_DEFAULT:.0f})")
    return value


def build_settings(*, root_flag: str | None, slurm_conf_flag: str | None, env: Mapping[str, str],
                   identity: Identity, verbose: int, debug: bool, log_file: str | None,
                   log_format: str | None) -> Settings:
    """Apply the precedence rules; a bad SCRUN_*DEBUG value or --log path raises ConfigError."""
    from scrun.config.paths import default_root
    from scrun.log import log_config_from

    if root_flag:
        root, note = os.path.abspath(root_flag), None
    else:
        root, note = default_root(identity, env)
    try:
        log = log_config_from(env, verbose=verbose, debug=debug, log_file=log_file, log_format=log_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(root=root, root_note=note, slurm_conf=resolve_slurm_conf(slurm_conf_flag, env),
                    log=log, env=dict(env), identity=identity, lua_timeout=lua_timeout_from(env))
