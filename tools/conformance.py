#!/usr/bin/env python3
"""The OCI runtime-tools validation suite against crun and scrun, side by side.

    python3 tools/conformance.py [--only NAME …] [--json FILE] [--check FILE]

Builds the pinned suite from ../shared/thirdparty/ (offline, Debian's golang-go) into a cache
directory once, runs every validation program with RUNTIME=crun and RUNTIME=scrun (each with its
own TMPDIR and a timeout), and prints a per-program table and the totals. With --check FILE
(tests/conformance/expected-failures.txt) it exits 1 when scrun fails a test crun passes that is
not on the list, or when a listed test passes: the list of differences by design stays true.
Standard library only.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

REPO = pathlib.Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "thirdparty" / "runtime-tools-260e151.tar.gz"
# Inside the checkout (git-ignored): a namespace lane sees it at the same path and reuses the build.
CACHE = pathlib.Path(os.environ.get("SCRUN_CONFORMANCE_CACHE", str(REPO / ".cache" / "conformance")))
PROGRAM_TIMEOUT = 120
RUNTIMES = {"crun": "crun", "scrun": "/usr/local/bin/scrun"}
# Programs that use one fixed host path for both runtimes: run one runtime at a time, or the two
# race (delete_only_create_resources makes /sys/fs/cgroup/pids/cgrouptest, checks it outlives the
# container's delete, and removes it at its end: crun's run removed it under scrun's).
RUN_ALONE = {"delete_only_create_resources"}
_TAP = re.compile(r"^(ok|not ok)\s+(\d+)\s*(?:-\s*)?(.*?)\s*(#\s*(SKIP|TODO).*)?$", re.IGNORECASE)


class ConformanceError(Exception):
    """The suite could not be built or run; the message says why and what to do."""


def say(msg: str) -> None:
    print(f"conformance: {msg}", file=sys.stderr, flush=True)


def parse_tap(text: str) -> dict[str, list[str]]:
    """{"passed": [...], "failed": [...], "skipped": [...]} of test descriptions; numbers dropped
    (they shift between runtimes when a program stops early)."""
    out: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for line in text.splitlines():
        m = _TAP.match(line.strip())
        if not m:
            continue
        status, _num, desc, directive, kind = m.groups()
        desc = desc or "(no description)"
        if directive and kind and kind.upper() == "SKIP":
            out["skipped"].append(desc)
        elif status.lower() == "ok":
            out["passed"].append(desc)
        else:
            out["failed"].append(desc)
    return out


def build() -> pathlib.Path:
    """The unpacked, built suite (cached: rebuilt only when missing)."""
    src = CACHE / "runtime-tools"
    if (src / "runtimetest").exists() and list(src.glob("validation/*/*.t")):
        return src
    if not ARCHIVE.exists():
        raise ConformanceError(f"{ARCHIVE} is missing: the shared folder must sit next to the repository")
    if shutil.which("go") is None:
        raise ConformanceError("`go` not found: apt-get install golang-go (tools/devcluster.py packages does)")
    say(f"building runtime-tools from {ARCHIVE.name} (~30 s)")
    shutil.rmtree(src, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xzf", str(ARCHIVE), "-C", str(CACHE)], check=True)
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", GOCACHE=str(CACHE / "gocache"))
    proc = subprocess.run(["make", "runtimetest", "validation-executables"], cwd=src, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConformanceError(f"building runtime-tools failed: {proc.stderr.strip()[-1500:]}")
    return src


def containers(runtime: str) -> set[str]:
    """Ids the runtime knows in its default root (crun list; scrun's /run/scrun)."""
    if runtime == RUNTIMES["crun"]:
        out = subprocess.run(["crun", "list", "-q"], capture_output=True, text=True).stdout
        return set(out.split())
    try:
        return set(os.listdir("/run/scrun"))
    except FileNotFoundError:
        return set()


def clean_up(runtime: str, before: set[str]) -> list[str]:
    """Delete what a program left behind on purpose (some do); return those ids."""
    left = sorted(containers(runtime) - before)
    for cid in left:
        subprocess.run([runtime, "delete", "--force", cid], capture_output=True, timeout=60)
    return left


def run_program(src: pathlib.Path, program: pathlib.Path, runtime: str) -> dict:
    """One validation program against one runtime: its TAP results, time, how it ended, and the
    containers it left (deleted here)."""
    before = containers(runtime)
    tmp = tempfile.mkdtemp(prefix=f"conformance-{program.stem}-")
    env = dict(os.environ, RUNTIME=runtime, TMPDIR=tmp)
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(program)], cwd=src, env=env, capture_output=True, text=True,
                              timeout=PROGRAM_TIMEOUT, stdin=subprocess.DEVNULL)
        text, ended = proc.stdout, f"exit {proc.returncode}"
    except subprocess.TimeoutExpired as exc:
        text = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        ended = f"timeout {PROGRAM_TIMEOUT}s"
    finally:
        left = clean_up(runtime, before)
        unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)  # some programs leave bundles (and symlinks) on purpose
    return {**parse_tap(text), "seconds": round(time.monotonic() - t0, 2), "ended": ended, "left": left}


def unmount_under(top: str) -> None:
    """Mounts a program left under its TMPDIR (crun runs linux_ns_itype's container in this mount
    namespace: its /proc, /dev, /dev/pts stay mounted), deepest first: they would pile up in the
    host's mount table run after run, and rmtree cannot remove a mount point."""
    prefix = os.path.realpath(top).rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        points = [line.split()[4].replace("\\040", " ") for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def program_name(src: pathlib.Path, program: pathlib.Path) -> str:
    """`hooks_stdin` for validation/hooks_stdin/hooks_stdin.t."""
    return program.parent.name if program.stem == program.parent.name else f"{program.parent.name}/{program.stem}"


def run_all(src: pathlib.Path, only: list[str]) -> dict[str, dict[str, dict]]:
    programs = sorted(src.glob("validation/*/*.t"))
    if only:
        programs = [p for p in programs if p.parent.name in only or program_name(src, p) in only]
    results: dict[str, dict[str, dict]] = {}
    alone = [p for p in programs if program_name(src, p) in RUN_ALONE]
    # crun and scrun side by side, each runtime's programs one after another (so what a program
    # leaves behind is told apart from what the next one makes).
    def one_runtime(name: str, path: str) -> None:
        for p in programs:
            if p not in alone:
                results.setdefault(program_name(src, p), {})[name] = run_program(src, p, path)

    with concurrent.futures.ThreadPoolExecutor(len(RUNTIMES)) as pool:
        for future in [pool.submit(one_runtime, name, path) for name, path in RUNTIMES.items()]:
            future.result()
    for p in alone:
        for name, path in RUNTIMES.items():
            results.setdefault(program_name(src, p), {})[name] = run_program(src, p, path)
    return dict(sorted(results.items()))


def differences(results: dict[str, dict[str, dict]]) -> set[str]:
    """`program: description` of every test scrun fails (or never reports) and crun passes."""
    out = set()
    for prog, by_runtime in results.items():
        crun, scrun = by_runtime.get("crun", {}), by_runtime.get("scrun", {})
        # Counted, not as sets: a program may name several tests alike (killsig's three are one
        # sentence), and one of them failing is still a difference.
        ours = Counter(scrun.get("passed", [])) + Counter(scrun.get("skipped", []))
        for desc, times in Counter(crun.get("passed", [])).items():
            if ours[desc] < times:
                out.add(f"{prog}: {desc}")
    return out


MAY_PASS = "(may pass) "


def read_expected(path: pathlib.Path, lane_kind: str) -> dict[str, str]:
    """`[kind] program: description  # reason` lines (the tag optional: every lane); blank lines and
    `#` comments skipped; entries tagged for another kind of lane left out. `~program: …` marks
    an entry whose outcome flickers with the host (its reason then starts with MAY_PASS)."""
    expected = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, reason = line.partition("  # ")
        key = key.strip()
        if key.startswith("["):
            tag, _, key = key[1:].partition("] ")
            if tag != lane_kind:
                continue
        reason = reason.strip()
        if key.startswith("~"):  # its outcome depends on the host at run time: never called stale
            key, reason = key[1:].strip(), MAY_PASS + reason
        expected[key] = reason
    return expected


def check(diff: set[str], results: dict[str, dict[str, dict]], expected: dict[str, str]) -> tuple[list[str], list[str]]:
    """(differences not on the list, listed entries scrun now passes) for the programs that ran.

    `program: *` lists a whole program (its test names follow what the host's cgroups offer);
    it is stale when that program shows no difference at all."""
    def listed(d: str) -> bool:
        return d in expected or f"{d.split(':', 1)[0]}: *" in expected

    unexpected = sorted(d for d in diff if not listed(d))
    stale = []
    for key, reason in expected.items():
        prog, _, desc = key.partition(": ")
        if prog not in results or reason.startswith(MAY_PASS):
            continue
        if desc == "*":
            if not any(d.startswith(prog + ": ") for d in diff):
                stale.append(key)
        elif desc in results[prog].get("scrun", {}).get("passed", []):
            stale.append(key)
    return unexpected, sorted(stale)


def table(results: dict[str, dict[str, dict]]) -> str:
    rows = ["| program | crun ok/not ok | scrun ok/not ok | scrun s |", "|---|---|---|---|"]
    totals = {name: [0, 0] for name in RUNTIMES}
    for prog, by_runtime in results.items():
        cells = []
        for name in RUNTIMES:
            r = by_runtime.get(name, {})
            ok, bad = len(r.get("passed", [])), len(r.get("failed", []))
            totals[name][0] += ok
            totals[name][1] += bad
            cells.append(f"{ok}/{bad}" + ("" if r.get("ended", "exit 0").startswith("exit") else f" ({r['ended']})"))
        rows.append(f"| {prog} | {cells[0]} | {cells[1]} | {by_runtime.get('scrun', {}).get('seconds', '')} |")
    rows.append(f"| **total** | {totals['crun'][0]}/{totals['crun'][1]} | {totals['scrun'][0]}/{totals['scrun'][1]} | |")
    return "\n".join(rows)


def leftovers(grace: float = 30.0) -> list[str]:
    """Jobs and anchors the run left behind (there must be none). A job the last program cancelled
    may still be completing, an anchor still exiting: give them `grace` seconds to go."""
    deadline = time.monotonic() + grace
    while True:
        jobs = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True).stdout.split("\n")
        # Only this pid namespace: from the host, a namespace lane's anchors are visible too. Not
        # zombies: an exited anchor whose parent is init now waits to be reaped, it left nothing.
        anchors = subprocess.run(["pgrep", "--ns", str(os.getpid()), "--nslist", "pid", "-x", "-r", "R,S,D,T,t", "scrun-anchor"],
                                 capture_output=True, text=True).stdout.split()
        left = [j for j in jobs if "scrun:" in j] + [f"anchor pid {a}" for a in anchors]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="program names (e.g. default, hooks_stdin)")
    parser.add_argument("--json", type=pathlib.Path, help="write the results here")
    parser.add_argument("--check", type=pathlib.Path, help="the expected-failures list to hold scrun to")
    args = parser.parse_args(argv)
    try:
        src = build()
        t0 = time.monotonic()
        results = run_all(src, args.only)
    except ConformanceError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return 1
    print(table(results))
    diff = differences(results)
    cleaned = {name: sum(len(r[name].get("left", [])) for r in results.values() if name in r) for name in RUNTIMES}
    left = leftovers()
    say(f"{len(results)} programs in {time.monotonic() - t0:.0f}s; scrun fails {len(diff)} test(s) that crun passes; "
        f"containers the programs left (deleted): {cleaned}; left behind after that: {left or 'nothing'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "differences": sorted(diff), "left": left}, indent=1) + "\n")
    if not args.check:
        return 0
    lane_kind = os.environ.get("SCRUN_LANE_KIND", "host")
    unexpected, stale = check(diff, results, read_expected(args.check, lane_kind))
    # The verdict goes to stdout, last: CI keeps only the tail of the output.
    for d in unexpected:
        print(f"conformance: scrun fails (not on the list): {d}")
    for k in stale:
        print(f"conformance: listed but passes now (remove it from {args.check.name}): {k}")
    if left:
        print(f"conformance: left behind: {left}")
    return 1 if unexpected or stale or left else 0


if __name__ == "__main__":
    sys.exit(main())
