"""Control protocol between the scrun CLI and a container's anchor.

One JSON object per line over the unix socket <state dir>/ctl.sock, one request and one reply
per connection. Every message carries "v" (PROTOCOL_VERSION); a mismatch is refused, so an
anchor from an older scrun is never misread. Requests: {"v", "op": start|kill|delete|ping, …};
replies: {"v", "ok": true, …} or {"v", "ok": false, "error": "…", "kind": K}, K one of
REFUSALS, each one class of scrun.errors (refusal_error), so the CLI exits as if it had
refused the request itself.
The anchor checks the peer with SO_PEERCRED: only its own uid and root may talk to it.
"""
from __future__ import annotations

import os

from scrun import errors, fastjson

PROTOCOL_VERSION = 1
OPS = ("start", "kill", "pause", "resume", "delete", "ping")
# A request or reply is a few hundred bytes; a longer one is refused, never buffered whole.
MAX_MESSAGE = 64 * 1024
# sun_path holds 108 bytes; longer paths are reached through /proc/self/fd/<dirfd>/NAME.
MAX_SOCKET_PATH = 100


def peer_uid(sock) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED)."""
    import socket
    import struct

    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


# The closed set of refusal kinds, and the error each becomes on the CLI's side.
REFUSALS: dict[str, type[errors.ScrunError]] = {
    "status": errors.InvalidStatusError,   # the verb is not allowed in the container's phase
    "permission": errors.NotOwnerError,    # the caller is neither root nor the owner
    "invalid": errors.InvalidInputError,   # a request field the anchor cannot use
    "slurm": errors.SlurmError,            # the step could not be launched
    "protocol": errors.AnchorError,        # a malformed request
    "internal": errors.AnchorError,        # a bug of the anchor's (logged there)
}


def refusal(kind: str, message: str) -> dict[str, object]:
    if kind not in REFUSALS:
        raise ValueError(f"unknown refusal kind {kind!r}")
    return {"ok": False, "error": message, "kind": kind}


def kind_of(exc: errors.ScrunError) -> str:
    """The refusal kind of an error raised while serving a request."""
    for kind, cls in REFUSALS.items():
        if isinstance(exc, cls):
            return kind
    return "internal"


def refusal_error(reply: dict[str, object], what: str) -> errors.ScrunError:
    """A refusing reply → the error the CLI raises (an unknown kind, from another version: AnchorError)."""
    message = str(reply.get("error") or f"{what} refused")
    cls = REFUSALS.get(str(reply.get("kind")), errors.AnchorError)
    return cls(message)


class ProtocolError(ValueError):
    """A message that is not valid JSON, has the wrong version, or an unknown op."""


def encode(message: dict[str, object]) -> bytes:
    return fastjson.dumps({"v": PROTOCOL_VERSION, **message}).encode() + b"\n"


def decode(line: bytes) -> dict[str, object]:
    try:
        message = fastjson.loads(line.decode("utf-8", errors="replace"))
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    if message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {message.get('v')!r}, expected {PROTOCOL_VERSION}")
    return message


def decode_request(line: bytes) -> dict[str, object]:
    message = decode(line)
    if message.get("op") not in OPS:
        raise ProtocolError(f"unknown op {message.get('op')!r}")
    return message


def reachable_path(path: str) -> tuple[str, int | None]:
    """A path short enough for sun_path, and a directory fd the caller must close (or None)."""
    if len(path.encode()) <= MAX_SOCKET_PATH:
        return path, None
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dirfd}/{os.path.basename(path)}", dirfd
