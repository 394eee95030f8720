"""Who we are inside rootless podman's user namespace, and who we are to Slurm.

Rootless podman runs its runtime as uid 0 of a user namespace that maps 0 to the real user
(and 1..N to the subuid range). munge authenticates the real ids (the kernel translates the
socket peer's credentials), but salloc/srun put the *namespace* ids from getuid()/getgid() in
the request, and slurmctld 22.05 refuses the mismatch ("Requested UID=0 doesn't match user
UID=1001"). Pure code here: parsing /proc/self/{uid,gid}_map text and deciding.
"""
from __future__ import annotations

IdMap = tuple[tuple[int, int, int], ...]  # (inside, outside, count) lines of /proc/<pid>/uid_map
INITIAL_NAMESPACE_MAP: IdMap = ((0, 0, 4294967295),)


def parse_id_map(text: str) -> IdMap:
    """The lines of a uid_map/gid_map file; ValueError on anything else."""
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"id map line {line!r}: expected 3 numbers")
        inside, outside, count = (int(f) for f in fields)
        lines.append((inside, outside, count))
    return tuple(lines)


def to_outside(id_map: IdMap, inside_id: int) -> int | None:
    """The id that `inside_id` is in the parent namespace; None when it is not mapped."""
    for inside, outside, count in id_map:
        if inside <= inside_id < inside + count:
            return outside + (inside_id - inside)
    return None


class Identity:
    """Our ids as the process sees them (`uid`, `gid`) and as the rest of the host does (`real_*`).

    A plain class, not a dataclass: every verb resolves the default state root through it, and
    importing dataclasses (inspect, ast, re …) cost ~18 ms of each `state`/`start`/`delete`."""

    __slots__ = ("uid", "gid", "real_uid", "real_gid", "in_user_namespace")

    def __init__(self, *, uid: int, gid: int, real_uid: int, real_gid: int, in_user_namespace: bool):
        self.uid, self.gid, self.real_uid, self.real_gid = uid, gid, real_uid, real_gid
        self.in_user_namespace = in_user_namespace

    def _fields(self) -> tuple[int, int, int, int, bool]:
        return (self.uid, self.gid, self.real_uid, self.real_gid, self.in_user_namespace)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return ("Identity(uid={}, gid={}, real_uid={}, real_gid={}, in_user_namespace={})").format(*self._fields())

    @classmethod
    def from_maps(cls, uid: int, gid: int, uid_map: IdMap, gid_map: IdMap) -> Identity:
        real_uid, real_gid = to_outside(uid_map, uid), to_outside(gid_map, gid)
        return cls(uid=uid, gid=gid,
                   real_uid=uid if real_uid is None else real_uid,
                   real_gid=gid if real_gid is None else real_gid,
                   in_user_namespace=uid_map != INITIAL_NAMESPACE_MAP)

    @property
    def ids_differ(self) -> bool:
        """Slurm commands would send ids that are not ours outside (rootless podman: 0 ≠ 1001)."""
        return (self.uid, self.gid) != (self.real_uid, self.real_gid)


def slurm_command_prefix(identity: Identity) -> list[str]:
    """How to run a Slurm client so that getuid()/getgid() return the real ids.

    A nested user namespace that maps the real uid/gid onto our own: it needs no privilege and
    no helper (a process may always map its own ids), Slurm sees ids that match munge's, and
    `unshare` execs the command, so its pid and signals stay the command's. Empty when nothing
    needs changing.
    """
    if not identity.ids_differ:
        return []
    return ["unshare", "--user", f"--map-user={identity.real_uid}", f"--map-group={identity.real_gid}", "--"]
