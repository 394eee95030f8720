"""Pseudo-terminal for `process.terminal: true`: the master goes to the engine, the slave to srun.

conmon and containerd pass --console-socket PATH and wait for the master end of a pty on it
(SCM_RIGHTS). We send it as runc does: the pts name as payload, the master fd as the right.
srun gets the slave as stdin/stdout/stderr and runs with --pty, so the remote process sees a
real terminal. srun learns of a resize by SIGWINCH and sends the new size to the node, but only
once the node has connected to its pty port: a SIGWINCH before that interrupts the accept() and
ends srun's pty thread for good (srun_pty.c: "pty: accept failure"), and no resize ever reaches
the container. podman resizes the console while start runs, so that window is real (seen in CI:
a shell whose terminal stayed 0x0). Hence the anchor, a session leader, takes the slave as its
own controlling terminal: the kernel signals the anchor, which hands each resize to srun once
the step's tasks have started (anchor/step.py). Where the anchor cannot, srun takes it as before.
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
import tty

from scrun.errors import InvalidInputError


def open_pty(size: tuple[int, int] | None) -> tuple[int, int, str]:
    """(master, slave, slave name); `size` is (rows, cols) from process.consoleSize."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    # Raw from the start: the remote pty (on the node) echoes and handles ^C; a local echo
    # before srun switches to raw would print stray bytes (seen: "^@").
    tty.setraw(slave)
    if size is not None and size[0] > 0 and size[1] > 0:
        set_size(slave, *size)
    return master, slave, os.ttyname(slave)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols


def send_master(console_socket: str, master: int, name: str) -> None:
    """Connect to the engine's console socket and hand over the master fd."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
        socket.send_fds(sock, [name.encode()], [master])
    except OSError as exc:
        raise InvalidInputError(f"--console-socket {console_socket}: cannot send the terminal: {exc.strerror or exc}") from None
    finally:
        sock.close()


def take_as_controlling_terminal(fd: int) -> bool:
    """Make `fd` the caller's controlling terminal; False where it cannot be (not a session
    leader, or it already has one)."""
    try:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    except OSError:
        return False
    return True


def become_controlling_terminal() -> None:
    """preexec for srun: it runs in a new session (start_new_session); fd 0 becomes its ctty."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
