"""What the runtime-spec says a runtime MUST refuse, checked at `create` on the login node.

crun on the node refuses the same things, but only once the step runs: the engine would see a
created, started and then stopped container, with the reason only in the container's stderr.
Each check here is one the node's runtime would fail anyway, so refusing early changes no
outcome, only when and how clearly it is reported. Pure: the caller reads any files.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from scrun.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs create ~7 ms to import
if TYPE_CHECKING:
    from typing import Any

# runtime-spec config.md, POSIX process: "valid values are defined in getrlimit(3)".
RLIMITS = frozenset({
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS", "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
})
# capabilities(7), through CAP_CHECKPOINT_RESTORE (Linux 5.9, number 40).
CAPABILITIES = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
})
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
# linux.namespaces[].type → the name readlink(/proc/<pid>/ns/<x>) gives that kind ("net:[4026…]").
NAMESPACE_KINDS = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
                   "cgroup": "cgroup", "time": "time"}
U32 = 2 ** 32


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_uint(value: object, limit: int = 2 ** 64) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def check_rlimits(process: Mapping[str, Any], where: str) -> None:
    rlimits = process.get("rlimits")
    if rlimits is None:
        return
    if not isinstance(rlimits, list):
        raise InvalidInputError(f"{where}: process.rlimits must be a list")
    seen: set[str] = set()
    for i, rl in enumerate(rlimits):
        field = f"process.rlimits[{i}]"
        if not isinstance(rl, dict):
            raise InvalidInputError(f"{where}: {field} must be an object with type, soft and hard")
        kind = rl.get("type")
        if kind not in RLIMITS:
            raise InvalidInputError(f"{where}: {field}.type {kind!r} is not an rlimit (getrlimit(2) names, "
                                    "e.g. RLIMIT_NOFILE)")
        if kind in seen:
            raise InvalidInputError(f"{where}: {field}: {kind} is given twice")
        seen.add(kind)
        soft, hard = rl.get("soft"), rl.get("hard")
        if not (_is_uint(soft) and _is_uint(hard)):
            raise InvalidInputError(f"{where}: {field} ({kind}): soft and hard must be integers >= 0")
        if soft > hard:
            raise InvalidInputError(f"{where}: {field} ({kind}): soft limit {soft} is above hard limit {hard}")


def check_capabilities(process: Mapping[str, Any], where: str) -> None:
    caps = process.get("capabilities")
    if caps is None:
        return
    if not isinstance(caps, dict):
        raise InvalidInputError(f"{where}: process.capabilities must be an object of capability lists")
    for name in CAPABILITY_SETS:
        values = caps.get(name)
        if values is None:
            continue
        if not isinstance(values, list):
            raise InvalidInputError(f"{where}: process.capabilities.{name} must be a list of CAP_* names")
        for cap in values:
            if cap not in CAPABILITIES:
                raise InvalidInputError(f"{where}: process.capabilities.{name}: {cap!r} is not a Linux "
                                        "capability (capabilities(7) names, e.g. CAP_NET_BIND_SERVICE)")


def check_id_mappings(linux: Mapping[str, Any], where: str) -> None:
    """uidMappings/gidMappings: well-formed, no two ranges overlapping, and only with a user namespace."""
    namespaces = linux.get("namespaces") or []
    has_userns = isinstance(namespaces, list) and any(isinstance(n, dict) and n.get("type") == "user"
                                                      for n in namespaces)
    for field in ("uidMappings", "gidMappings"):
        mappings = linux.get(field)
        if mappings is None:
            continue
        if not isinstance(mappings, list):
            raise InvalidInputError(f"{where}: linux.{field} must be a list")
        if mappings and not has_userns:
            raise InvalidInputError(f"{where}: linux.{field} needs a user namespace: add {{\"type\": \"user\"}} "
                                    "to linux.namespaces")
        ranges: list[tuple[int, int, int]] = []
        for i, m in enumerate(mappings):
            if not (isinstance(m, dict) and _is_uint(m.get("containerID"), U32) and _is_uint(m.get("hostID"), U32)
                    and _is_uint(m.get("size"), U32) and m["size"] > 0):
                raise InvalidInputError(f"{where}: linux.{field}[{i}] needs containerID, hostID and size, "
                                        "integers below 2^32 (size > 0)")
            ranges.append((m["containerID"], m["hostID"], m["size"]))
        for a in range(len(ranges)):
            for b in range(a + 1, len(ranges)):
                (ca, ha, sa), (cb, hb, sb) = ranges[a], ranges[b]
                if ca < cb + sb and cb < ca + sa:
                    raise InvalidInputError(f"{where}: linux.{field}[{a}] and [{b}] map overlapping container ids")
                if ha < hb + sb and hb < ha + sa:
                    raise InvalidInputError(f"{where}: linux.{field}[{a}] and [{b}] map overlapping host ids")


def check_namespace_paths(linux: Mapping[str, Any], where: str, kind_of_path: Mapping[str, str | None]) -> None:
    """A namespace joined by path must be of its type. `kind_of_path`: path → the kind its
    readlink names ("net"), or None when it cannot be read (left to the node)."""
    namespaces = linux.get("namespaces") or []
    if not isinstance(namespaces, list):
        raise InvalidInputError(f"{where}: linux.namespaces must be a list")
    seen: set[str] = set()
    for i, ns in enumerate(namespaces):
        if not isinstance(ns, dict) or ns.get("type") not in NAMESPACE_KINDS:
            raise InvalidInputError(f"{where}: linux.namespaces[{i}].type must be one of "
                                    f"{', '.join(NAMESPACE_KINDS)}")
        kind = ns["type"]
        if kind in seen:
            raise InvalidInputError(f"{where}: linux.namespaces: {kind} is given twice")
        seen.add(kind)
        path = ns.get("path")
        if path is None or path == "":
            continue
        if not isinstance(path, str):
            raise InvalidInputError(f"{where}: linux.namespaces[{i}].path must be a string")
        found = kind_of_path.get(path)
        if found is not None and found != NAMESPACE_KINDS[kind]:
            raise InvalidInputError(f"{where}: linux.namespaces[{i}]: {path} is a {found} namespace, not {kind}")


def namespace_paths(linux: Mapping[str, Any]) -> list[str]:
    """The paths check_namespace_paths needs looked up."""
    namespaces = linux.get("namespaces")
    if not isinstance(namespaces, list):
        return []
    return [ns["path"] for ns in namespaces if isinstance(ns, dict) and isinstance(ns.get("path"), str) and ns["path"]]


def asks_new_network_namespace(linux: Mapping[str, Any]) -> bool:
    """config.json wants the runtime to make a network namespace (no path to join): docker 28
    then enters the one of the pid create reports (anchor/netnsholder.py)."""
    namespaces = linux.get("namespaces") if isinstance(linux, Mapping) else None
    if not isinstance(namespaces, list):
        return False
    return any(isinstance(ns, Mapping) and ns.get("type") == "network" and not ns.get("path") for ns in namespaces)


def host_id_of_root(mappings: Sequence[Mapping[str, Any]] | None) -> int | None:
    """The host id that the container's id 0 maps to; None without such a mapping."""
    for m in mappings or ():
        if isinstance(m, dict) and _is_uint(m.get("containerID")) and _is_uint(m.get("hostID")) \
                and _is_uint(m.get("size")) and m["containerID"] == 0 < m["size"]:
            return m["hostID"]
    return None


def _is_mapped(host_id: int, mappings: Sequence[Mapping[str, Any]]) -> bool:
    return any(m["hostID"] <= host_id < m["hostID"] + m["size"] for m in mappings)


def first_unsearchable(chain: Sequence[tuple[str, int, int, int]], linux: Mapping[str, Any]) -> tuple[str, int, int] | None:
    """The first directory of `chain` ((path, uid, gid, mode) from / down to the rootfs) that
    the container's root, once in its user namespace, cannot search; None if all can be.

    Its capabilities count only on inodes whose owner and group are both mapped into the
    namespace; elsewhere only the permission bits for its host ids apply. Returns (path, uid, mode).
    """
    uids, gids = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    uid, gid = host_id_of_root(uids), host_id_of_root(gids)
    if uid is None:
        return None  # no root in the container: nothing we can say about who mounts it
    for path, owner, group, mode in chain:
        if _is_mapped(owner, uids) and _is_mapped(group, gids):
            continue
        if owner == uid:
            ok = mode & 0o100
        elif gid is not None and group == gid:
            ok = mode & 0o010
        else:
            ok = mode & 0o001
        if not ok:
            return path, owner, mode & 0o7777
    return None


def check_user(process: Mapping[str, Any], where: str) -> None:
    user = process.get("user")
    if user is None:
        return
    if not isinstance(user, dict):
        raise InvalidInputError(f"{where}: process.user must be an object with uid and gid")
    for field in ("uid", "gid"):
        if field in user and not _is_uint(user[field], U32):
            raise InvalidInputError(f"{where}: process.user.{field} must be an integer from 0 to 2^32-1")
    extra = user.get("additionalGids")
    if extra is not None and not (isinstance(extra, list) and all(_is_uint(g, U32) for g in extra)):
        raise InvalidInputError(f"{where}: process.user.additionalGids must be a list of integers from 0 to 2^32-1")


def check_hooks(doc: Mapping[str, Any], where: str) -> None:
    """Each hook: an absolute path, and args/env lists of strings, timeout > 0 (runtime-spec)."""
    hooks = doc.get("hooks")
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise InvalidInputError(f"{where}: hooks must be an object of hook lists")
    for stage, entries in hooks.items():
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise InvalidInputError(f"{where}: hooks.{stage} must be a list")
        for i, hook in enumerate(entries):
            field = f"hooks.{stage}[{i}]"
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str) or not hook["path"].startswith("/"):
                raise InvalidInputError(f"{where}: {field}.path must be an absolute path")
            for key in ("args", "env"):
                value = hook.get(key)
                if value is not None and not _is_str_list(value):
                    raise InvalidInputError(f"{where}: {field}.{key} must be a list of strings")
            timeout = hook.get("timeout")
            if timeout is not None and not (_is_uint(timeout) and timeout > 0):
                raise InvalidInputError(f"{where}: {field}.timeout must be a whole number of seconds > 0")


def check_mounts(doc: Mapping[str, Any], where: str) -> None:
    mounts = doc.get("mounts")
    if mounts is None:
        return
    if not isinstance(mounts, list):
        raise InvalidInputError(f"{where}: mounts must be a list")
    for i, mount in enumerate(mounts):
        field = f"mounts[{i}]"
        if not isinstance(mount, dict) or not isinstance(mount.get("destination"), str) or not mount["destination"]:
            raise InvalidInputError(f"{where}: {field}.destination must be a path")
        for key in ("source", "type"):
            if key in mount and not isinstance(mount[key], str):
                raise InvalidInputError(f"{where}: {field}.{key} must be a string")
        options = mount.get("options")
        if options is not None and not _is_str_list(options):
            raise InvalidInputError(f"{where}: {field}.options must be a list of strings")
