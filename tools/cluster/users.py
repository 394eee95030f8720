"""The unprivileged users of a lane, each set up for rootless podman through scrun.

What a login node gives a user, made by hand (no systemd here): an account, a subordinate
uid/gid range, /run/user/<uid> (pam_systemd makes it at login), the user's own
~/.config/containers/containers.conf naming scrun, and the test image in the user's storage.
Two users, so tests can show that one cannot touch the other's containers.
"""
from __future__ import annotations

from cluster.images import exported_image, wanted
from cluster.shell import write_if_changed
from cluster.slurmconf import CRUN_ROOT, MARKER
from cluster.target import Target

ROOTLESS_USER = "scrunuser"   # user A of the tests
OTHER_USER = "scrunpeer"      # user B: must not reach A's containers
USERS = (ROOTLESS_USER, OTHER_USER)
SUBID_SIZE = 65536
SUBID_FIRST = 100000


def free_subid_start(*files_text: str) -> int:
    """The first id after every range in /etc/subuid and /etc/subgid (ranges never overlap)."""
    end = SUBID_FIRST
    for text in files_text:
        for line in text.splitlines():
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                end = max(end, int(fields[1]) + int(fields[2]))
    return end


def user_containers_conf(scrun_path: str) -> str:
    return f"""{MARKER}
# This user's podman: `podman --runtime scrun` runs containers as Slurm jobs.
[engine.runtimes]
scrun = ["{scrun_path}"]
"""


def ensure_subids(t: Target, user: str) -> None:
    """Debian's useradd gives new users a range; an account made before it may have none."""
    paths = [t.path("/etc/subuid"), t.path("/etc/subgid")]
    texts = [p.read_text() if p.exists() else "" for p in paths]
    if all(any(line.startswith(user + ":") for line in text.splitlines()) for text in texts):
        return
    start = free_subid_start(*texts)
    for path, text in zip(paths, texts, strict=True):
        if not any(line.startswith(user + ":") for line in text.splitlines()):
            with open(path, "a") as fh:
                fh.write(f"{user}:{start}:{SUBID_SIZE}\n")


def create_users(t: Target) -> None:
    """The test users exist before the nodes start: each node makes their crun state directory."""
    for user in USERS:
        if t.run(["id", user], check=False, timeout=10).returncode != 0:
            t.run(["useradd", "--create-home", "--shell", "/bin/bash", user])


def ensure_user(t: Target, user: str, scrun_path: str) -> None:
    ensure_subids(t, user)
    uid = t.run(["id", "-u", user], timeout=10).stdout.strip()
    home = t.run(["sh", "-c", f"getent passwd {user} | cut -d: -f6"], timeout=10).stdout.strip()
    runtime_dir = f"/run/user/{uid}"
    t.run(["install", "-d", "-m", "0755", "/run/user"])
    t.run(["install", "-d", "-m", "0700", "-o", user, "-g", user, runtime_dir])
    t.run(["install", "-d", "-m", "0700", "-o", user, "-g", user, f"{CRUN_ROOT}/{user}"])
    conf_dir = f"{home}/.config/containers"
    t.run(["install", "-d", "-o", user, "-g", user, f"{home}/.config", conf_dir])
    if write_if_changed(t.path(f"{conf_dir}/containers.conf"), user_containers_conf(scrun_path)):
        t.chown(f"{user}:{user}", f"{conf_dir}/containers.conf")
    load_image(t, user, runtime_dir)


def load_image(t: Target, user: str, runtime_dir: str) -> None:
    as_user = ["runuser", "-u", user, "--", "env", f"XDG_RUNTIME_DIR={runtime_dir}", "sh", "-c"]
    for image in wanted():
        if t.run([*as_user, f"cd /tmp && podman image exists {image}"], check=False, timeout=60).returncode != 0:
            with exported_image(t, f"podman-{user}", image) as archive:
                t.run([*as_user, f"cd /tmp && podman load -q -i {archive}"], timeout=300)


def setup_users(t: Target, scrun_path: str) -> None:
    create_users(t)
    for user in USERS:
        ensure_user(t, user, scrun_path)
