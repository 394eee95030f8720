"""Reading and checking an OCI bundle's config.json."""
from __future__ import annotations

import json
import os
import stat
from collections import namedtuple

from scrun.core.envlist import env_dict
from scrun.core.options import OPTIONS_BY_ENV
from scrun.core.resources import requests_from_config
from scrun.core.specchecks import (
    check_capabilities, check_hooks, check_id_mappings, check_mounts, check_rlimits, check_user)
from scrun.errors import InvalidInputError


class BundleConfig(namedtuple("BundleConfig", "bundle config_file oci_version root_path args env terminal cwd "
                                           "annotations console_size engine_requests linux binds hook_paths",
                              defaults=((), ()))):
    """What scrun needs from config.json; the file itself goes to the node untouched.
    console_size: (rows, cols) from process.consoleSize, or None; engine_requests: SCRUN_*
    values the engine's flags ask for (--cpus, --memory, org.slurm.* annotations); linux:
    config.json's linux object, for create's checks; binds: (destination, source) of its bind
    mounts (a command can come from one: docker binds /etc/hostname); hook_paths: the path of
    every hook (docker's --gpus is NVIDIA's hook: core.cdi)."""

    __slots__ = ()

    def env_dict(self) -> dict[str, str]:
        return env_dict(self.env)


def parse_bundle_config(bundle: str, text: str) -> BundleConfig:
    """Validate config.json text of `bundle`; errors name the field and the file."""
    config_file = os.path.join(bundle, "config.json")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{config_file}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise InvalidInputError(f"{config_file}: nested too deeply to be a config.json") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{config_file}: must hold a JSON object")

    def bad(field: str, want: str) -> InvalidInputError:
        return InvalidInputError(f"{config_file}: {field} must be {want}")

    oci_version = doc.get("ociVersion")
    if not isinstance(oci_version, str) or not oci_version:
        raise bad("ociVersion", "a non-empty string")
    root = doc.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise bad("root.path", "a non-empty string")
    root_path = root["path"] if os.path.isabs(root["path"]) else os.path.normpath(os.path.join(bundle, root["path"]))
    # process is optional at create (runtime-spec: only `start` needs it, and must then fail).
    process = doc.get("process")
    if process is None:
        process, args = {}, []
    elif not isinstance(process, dict):
        raise bad("process", "an object with args")
    else:
        args = process.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            raise bad("process.args", "a non-empty list of strings")
    env = process.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise bad("process.env", "a list of \"KEY=value\" strings")
    terminal = process.get("terminal", False)
    if not isinstance(terminal, bool):
        raise bad("process.terminal", "true or false")
    cwd = process.get("cwd", "/")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise bad("process.cwd", "an absolute path")
    console_size = None
    size = process.get("consoleSize")
    if isinstance(size, dict) and isinstance(size.get("height"), int) and isinstance(size.get("width"), int):
        console_size = (size["height"], size["width"])
    linux = doc.get("linux")
    linux = {} if linux is None else linux
    if not isinstance(linux, dict):
        raise bad("linux", "an object")
    check_rlimits(process, config_file)
    check_capabilities(process, config_file)
    check_user(process, config_file)
    check_id_mappings(linux, config_file)
    check_hooks(doc, config_file)
    check_mounts(doc, config_file)
    annotations_raw = doc.get("annotations")
    annotations_raw = {} if annotations_raw is None else annotations_raw
    if not isinstance(annotations_raw, dict):
        raise bad("annotations", "an object")
    annotations = {}
    for key, value in annotations_raw.items():
        if isinstance(value, (dict, list)):
            raise bad(f"annotations.{key}", "a string")
        annotations[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return BundleConfig(
        bundle=bundle,
        config_file=config_file,
        oci_version=oci_version,
        root_path=root_path,
        args=tuple(args),
        env=tuple(env),
        terminal=terminal,
        cwd=cwd,
        annotations=annotations,
        console_size=console_size,
        engine_requests=requests_from_config(doc, config_file, OPTIONS_BY_ENV),
        linux=linux,
        binds=bind_mounts(doc),
        hook_paths=tuple(str(h.get("path")) for entries in (doc.get("hooks") or {}).values() if isinstance(entries, list)
                         for h in entries if isinstance(h, dict)),
    )


def bind_mounts(doc: dict) -> tuple[tuple[str, str], ...]:
    """(destination, source) of config.json's bind mounts (check_mounts has checked their shape)."""
    out = []
    for mount in doc.get("mounts") or ():
        if not isinstance(mount, dict):
            continue
        options = mount.get("options") or ()
        is_bind = mount.get("type") == "bind" or any(o in ("bind", "rbind") for o in options if isinstance(o, str))
        dest, source = mount.get("destination"), mount.get("source")
        if is_bind and isinstance(dest, str) and isinstance(source, str) and dest.startswith("/"):
            out.append((os.path.normpath(dest), source))
    return tuple(out)


# podman's and docker's config.json are 5-30 KiB; a file far larger is refused, not read whole
# (the anchor and create would otherwise hold whatever an image's build made it).
MAX_CONFIG_BYTES = 4 << 20


def load_bundle_config(bundle: str) -> BundleConfig:
    """Read `<bundle>/config.json` (bundle made absolute) and validate it."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise InvalidInputError(f"bundle {bundle}: no such directory (pass --bundle DIR holding config.json)")
    config_file = os.path.join(bundle, "config.json")
    try:
        # O_NONBLOCK: a FIFO in its place must not hang create; the read below then finds no data.
        with open(os.open(config_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise InvalidInputError(f"{config_file}: cannot read: not a regular file (a bundle's config.json is one)")
            data = fh.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise InvalidInputError(f"{config_file}: larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config.json")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{config_file}: no such file (a bundle needs config.json; `crun spec` writes one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{config_file}: cannot read: {exc}") from None
    return parse_bundle_config(bundle, text)
