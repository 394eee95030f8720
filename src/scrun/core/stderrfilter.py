"""Drop srun's own status lines from the container's stderr; pass everything else byte-exact.

srun reports how tasks ended ("srun: error: n1: task 0: Exited with exit code 3") and
slurmstepd how steps were cancelled. crun prints nothing of the kind, and the exit code
already says it, so those exact lines are removed. Real srun errors still pass.
Streaming: a partial line is held back only while it could still become such a line.

The container's srun runs with --verbose, for two lines: "launching StepId=J.S on host …" (the
step the anchor signals) and "Node n1, 1 tasks started" (22.05: "launch/slurm: _task_start: Node
…"), the moment the container's process runs on its node, which the anchor waits for before it
signals the step (a signal sent while the step is still launching is lost, or kills the process
before its handlers are set). Every informational line srun writes before "launching" goes (its
options, the allocation): no task exists yet, so none of those lines can be the container's.
After it, only the lines srun -v writes while tasks run go (tasks started, a plugin loaded,
task exit notifications, "First task exited"): a container's own line that starts with "srun: "
arrives, as under crun. srun's errors, warnings and fatal lines always pass.
"""
from __future__ import annotations

import re

NOISE = re.compile(
    rb"^(?:"
    rb"srun: error: \S+: tasks? [0-9,\-]+: (?:Exited with exit code \d+|Killed|Terminated|Aborted|Segmentation fault)"
    rb"|srun: Job step aborted: Waiting up to \d+ seconds for job step to finish\."
    rb"|srun: Force Terminated (?:job|JobId=|StepId=)\S*"
    rb"|slurmstepd(?:-\S+)?: error: \*\*\* (?:STEP|JOB) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO [A-Z ]+)? \*\*\*"
    rb")\r?\n$"
)
_PREFIXES = (b"srun: ", b"slurmstepd")
TASKS_STARTED = re.compile(rb"^srun: (?:launch/slurm: _task_start: )?Node \S+, \d+ tasks? started\r?\n$")
# srun --verbose names the step it launches (22.05 and 24.11 alike): the anchor signals that step
# by its id, with no slurmctld round trip to find it (which can come back empty under load).
STEP_LAUNCHING = re.compile(rb"^srun: launching StepId=\d+\.(\d+) on host ")
_KEPT_IN_VERBOSE = (b"srun: error: ", b"srun: fatal: ", b"srun: warning: ")
# What srun -v writes once the step is launching (its sources, 22.05 to 26.05): a plugin loaded
# late ("route/default: init: route default plugin loaded", 24.11's topology/default), and with
# several tasks "First task exited. Terminating job in 10s".
WHILE_RUNNING = re.compile(rb"^srun: (?:[\w-]+/[\w-]+: init: .*|First task exited\. Terminating job in \d+s)\r?\n$")
# What `srun --verbose` says as the step ends (22.05 through its launch plugin, 24.11 bare): the
# lines that follow the container's last bytes, and so are glued to them when those did not end
# with a newline.
VERBOSE_END = re.compile(
    rb"^srun: (?:launch/slurm: _task_finish: )?(?:Received task exit notification for \d+ tasks? of StepId=\S+ "
    rb"\(status=0x[0-9a-fA-F]+\)\.|\S+: tasks? [0-9,\-]+: (?:Completed|Exited with exit code \d+))\r?\n$")
# slurmstepd's word that the kernel's OOM killer ended processes of the step (22.05: "oom-kill
# event(s)", later "oom_kill event"): the line is the user's to see, as it is; the anchor names it.
OUT_OF_MEMORY = re.compile(rb"(?m)^slurmstepd(?:-\S+)?: error: Detected \d+ oom[-_]kill event")
# The word that the step was cancelled (scancel of the step or the job, time limit): slurmstepd's
# line, which only a started task gets, or srun's own, which comes also when the step is cancelled
# while its tasks still launch (26.05's srun then exits 0, and slurmstepd says nothing).
STEP_CANCELLED = re.compile(rb"^(?:slurmstepd(?:-\S+)?: error: \*\*\* STEP \S+ ON \S+ CANCELLED AT "
                            rb"|srun: Job step aborted: )")


# srun's and slurmstepd's lines are a few hundred bytes: a partial line longer than this is the
# container's, forwarded at once (a container printing "srun: " and never a newline would
# otherwise grow the anchor's memory without bound).
MAX_NOISE_LINE = 4096


def _could_be_noise(partial: bytes) -> bool:
    return len(partial) <= MAX_NOISE_LINE and any(p.startswith(partial[: len(p)]) for p in _PREFIXES)


class StderrFilter:
    """feed(chunk) -> bytes to forward now; flush() -> whatever is held at EOF."""

    def __init__(self, srun_verbose: bool = False) -> None:
        self._held = b""        # start of a line that may still turn into noise
        self._mid_line = False  # inside a line already forwarded: pass through to its newline
        self.step_cancelled = False  # slurmstepd or srun said the step was cancelled
        self.srun_verbose = srun_verbose  # srun ran with --verbose: its info lines are noise too
        self.tasks_started = False  # srun said the step's tasks run (only with --verbose)
        self.step_id: str | None = None  # the step srun said it launches (only with --verbose)

    def _is_noise(self, line: bytes) -> bool:
        if NOISE.match(line):
            self.step_cancelled = self.step_cancelled or bool(STEP_CANCELLED.match(line))
            return True
        if self.srun_verbose and line.startswith(b"srun: ") and not line.startswith(_KEPT_IN_VERBOSE):
            launching = STEP_LAUNCHING.match(line)
            if launching:  # one per node of the step: the first names it
                self.step_id = self.step_id or launching.group(1).decode()
                return True
            if TASKS_STARTED.match(line):
                self.tasks_started = True
                return True
            if self.step_id is None and not self.tasks_started:
                return True  # srun's options and allocation: no task runs yet
            return bool(WHILE_RUNNING.match(line) or VERBOSE_END.match(line))
        return False

    def _glued(self, line: bytes) -> int:
        """Where one of srun's exact status lines starts inside `line` (after a container's line
        that did not end: `errsrun: error: n1: task 0: Exited …`), or -1."""
        for prefix in _PREFIXES:
            at = line.find(prefix, 1)
            while at > 0:
                rest = line[at:]
                if NOISE.match(rest) or (self.srun_verbose and VERBOSE_END.match(rest)):
                    self._is_noise(rest)  # what it says (a cancelled step) still counts
                    return at
                at = line.find(prefix, at + 1)
        return -1

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        if self._mid_line and chunk and _could_be_noise(chunk[:len(_PREFIXES[1])]):
            # srun writes each of its lines whole: a read that starts with its prefix, after a
            # container's line that did not end, is a line of srun's own (a new line starts).
            self._mid_line = False
        data = self._held + chunk
        self._held = b""
        while data:
            if self._mid_line:
                nl = data.find(b"\n")
                if nl < 0:
                    out += data
                    return bytes(out)
                line, data = data[: nl + 1], data[nl + 1:]
                glued = self._glued(line)
                out += line if glued < 0 else line[:glued]
                self._mid_line = False
                continue
            nl = data.find(b"\n")
            if nl < 0:
                if _could_be_noise(data):
                    self._held = data
                else:
                    out += data
                    self._mid_line = True
                return bytes(out)
            line, data = data[: nl + 1], data[nl + 1:]
            # Glued first: the container's unfinished `srun: ` and srun's own line after it make
            # one line that starts like srun's (found by the property test, 24.11).
            glued = self._glued(line)
            if glued > 0:
                out += line[:glued]
            elif not self._is_noise(line):
                out += line
        return bytes(out)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


# How much of the end of what passed is kept to find its last line (a stop reason, crun's words).
TAIL_BYTES = 4096


def last_line(data: bytes, limit: int = 400) -> bytes:
    """The last non-blank line of `data` (an unfinished one counts), at most `limit` bytes."""
    lines = [line for line in data.splitlines() if line.strip()]
    return lines[-1][-limit:] if lines else b""
