"""CLI side of the control protocol: one blocking request, one reply. No asyncio here.

The C `_socket` module, not `socket`: that one imports enum and selectors (~5 ms of every
start/kill/delete) for conveniences a single unix-socket request does not use."""
from __future__ import annotations

import _socket
import os

from scrun.anchor.protocol import MAX_MESSAGE, ProtocolError, decode, encode, reachable_path
from scrun.errors import AnchorError


class AnchorUnreachableError(AnchorError):
    """The anchor's socket is missing or refuses connections: the anchor is gone."""


def request(socket_path: str, op: str, *, timeout: float = 30.0, **args: object) -> dict[str, object]:
    """Send {op, **args}; return the reply. Raises AnchorUnreachableError or AnchorError."""
    path, dirfd = reachable_path(socket_path)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise AnchorUnreachableError(f"anchor socket {socket_path}: {exc.strerror}") from None
        sock.sendall(encode({"op": op, **args}))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_MESSAGE:
                raise AnchorError(f"anchor at {socket_path} sent a reply longer than {MAX_MESSAGE} bytes to `{op}`")
    except TimeoutError:
        raise AnchorError(f"anchor at {socket_path} did not answer `{op}` within {timeout:.0f}s") from None
    except OSError as exc:
        raise AnchorUnreachableError(f"anchor socket {socket_path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
        if dirfd is not None:
            os.close(dirfd)
    if not data:
        raise AnchorUnreachableError(f"anchor at {socket_path} closed the connection without answering `{op}`")
    try:
        return decode(data)
    except ProtocolError as exc:
        raise AnchorError(f"anchor at {socket_path} sent a bad reply: {exc}") from None
