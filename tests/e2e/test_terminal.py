"""podman run -it through scrun, driven through a real terminal (tmux)."""
import os
import shutil
import subprocess
import uuid

import pytest

from conftest import COLS, IMAGE, ROWS, Tmux, jobs_named, require, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def term(podman_ready):
    require(shutil.which("tmux") is not None, "tmux is not installed")
    with Tmux() as t:
        yield t


def test_tty_and_exit_code(term):
    term.line(f"podman --runtime scrun run -it --rm {IMAGE} sh -c 'test -t 0 && test -t 1 && echo IS-A-TTY; exit 4'; echo RC:$?")
    screen = term.wait("RC:")
    assert "IS-A-TTY" in screen and "RC:4" in screen
    assert "srun: error" not in screen


def test_interactive_shell_size_and_exit(term):
    term.line(f"podman --runtime scrun run -it --rm {IMAGE} sh; echo RC:$?")
    term.wait("/ #")
    term.line("echo hel''lo; stty size")
    term.wait("hello")
    term.wait(f"{ROWS} {COLS}", timeout=15)  # the size of the outer terminal (the shell is up: no need for 60 s)
    term.line("exit 3")
    assert "RC:3" in term.wait("RC:")


def test_ctrl_c_reaches_the_container(term):
    term.line(f"podman --runtime scrun run -it --rm {IMAGE} sh -c 'trap \"echo got-int; exit 9\" INT; echo armed; sleep 100 & wait'; echo RC:$?")
    term.wait("armed")
    term.send("C-c")
    screen = term.wait("RC:")
    assert "got-int" in screen and "RC:9" in screen


def test_detached_tty_logs_and_rm(podman_ready):
    name = f"tty-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(["podman", "--runtime", "scrun", "run", "-dt", "--name", name, IMAGE, "sh", "-c",
                          "echo from-tty; sleep 100"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        wait_for(lambda: "from-tty" in subprocess.run(["podman", "logs", name], capture_output=True, text=True).stdout,
                 30, "podman logs to show the output")
    finally:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=120)
    assert not os.path.exists(f"/run/scrun/{cid}")
    wait_for(lambda: not jobs_named([f"scrun:{cid[:12]}"]), 30, "the job to go")


def test_resize_reaches_the_container(term):
    term.line(f"podman --runtime scrun run -it --rm {IMAGE} sh; echo RC:$?")
    term.wait("/ #")
    term.line("stty size")
    term.wait(f"{ROWS} {COLS}", timeout=15)
    subprocess.run(["tmux", "resize-window", "-t", term.name, "-x", str(COLS + 20), "-y", str(ROWS + 10)], check=True)
    import time
    time.sleep(1)  # conmon → master → SIGWINCH to srun → the node's pty
    term.line("stty size")
    term.wait(f"{ROWS + 10} {COLS + 20}")
    term.line("exit 0")
    assert "RC:0" in term.wait("RC:")


def test_attach_and_detach(term):
    name = f"att-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(["podman", "--runtime", "scrun", "run", "-dit", "--name", name, IMAGE, "sh"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    try:
        term.line(f"podman attach {name}; echo DETACHED:$?")
        import time
        time.sleep(1.5)
        term.line("echo attach''ed-ok")
        term.wait("attached-ok")
        term.send("C-p")
        time.sleep(0.3)
        term.send("C-q")
        assert "DETACHED:0" in term.wait("DETACHED:")
        status = subprocess.run(["podman", "inspect", name, "--format", "{{.State.Status}}"], capture_output=True, text=True)
        assert status.stdout.strip() == "running"
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, timeout=120)
    assert not os.path.exists(f"/run/scrun/{run.stdout.strip()}")


def test_exec_it_into_a_running_container(term, podman_ready):
    name = f"exec-it-{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "--runtime", "scrun", "run", "-d", "--name", name, IMAGE, "sleep", "100"],
                   check=True, capture_output=True, timeout=120)
    try:
        term.line(f"podman exec -it {name} sh; echo RC:$?")
        term.wait("/ #", timeout=60)
        term.line("test -t 0 && echo IS-A-T''TY; exit 5")
        screen = term.wait("RC:")
        assert "IS-A-TTY" in screen and "RC:5" in screen, screen
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, timeout=120)
