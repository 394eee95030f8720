"""Write scrun's man pages from the code they describe (issue 32):

    python3 tools/manpage.py           writes man/scrun.1 and man/scrun.conf.5
    python3 tools/manpage.py --check   exits 1 when they differ from what the code says

scrun.1 comes from the same argparse grammar that prints `scrun --help` (cli/args.py), the option
table of every SCRUN_* variable (core/options.py) and the error classes with their exit codes
(errors.py). scrun.conf.5, the site's side, lists scrun.conf's keys, the oci.conf keys scrun reads
and the `slurm.*` functions a scrun.lua gets (lua/host.py), each with the text below; a key or
function without one stops the build. tests/unit/test_manpages.py runs --check.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from scrun import __version__, errors  # noqa: E402
from scrun.cli.args import build_parser  # noqa: E402
from scrun.core.options import JOB, OPTION_TABLE  # noqa: E402

MAN = REPO / "man"

SCRUN_CONF_KEYS = {
    "StageDir": "A directory every compute node mounts (e.g. on the shared scratch filesystem). Without a "
                "scrun.lua, scrun copies a bundle whose rootfs the nodes cannot see to StageDir/<user>/<id> "
                "before the step, and removes it at delete.",
    "SharedPaths": "Comma-separated directories every node sees at the same path; a bundle under one of them "
                   "runs in place, without a copy. StageDir is always among them.",
    "ImageCache": "A directory under SharedPaths: each image's rootfs is copied once per user "
                  "(DIR/<user>/<key>) and later containers run from that entry, with private overlays.",
    "ImageCacheSize": "The size a user's cache entries may take (e.g. 50G); a new entry evicts the least "
                      "recently used entries no container runs from.",
    "NodeGuard": "yes (default) or no. The guard (the step's --task-prolog) stops a step on a node that "
                 "would ignore --container and run the command on the node itself.",
    "AnchorServer": "yes or no (default). yes: one anchor server per user and state root serves all of that "
                    "user's containers, and the pid the engine watches is a small shell that exits with the "
                    "container's code (4.5-5.2 MiB of the login node per running container instead of 16-18; "
                    "containers with a terminal keep an anchor of their own).",
}
OCI_CONF_KEYS = {
    "SrunPath": "The srun scrun runs (and salloc beside it).",
    "SrunArgs": "Extra arguments for every srun scrun runs.",
    "StdIODebug, FileDebug, SyslogDebug": "Log levels, as SCRUN_STDERR_DEBUG, SCRUN_FILE_DEBUG and "
                                          "SCRUN_SYSLOG_DEBUG set them per call.",
}
LUA_FUNCTIONS = {
    "log": "Log msg at a level (0 info, 1 verbose, 2 debug, 3 debug2, 4 debug3, more: debug4).",
    "error": "Log msg as an error.",
    "log_error": "Log a formatted message (string.format arguments) at that level.",
    "log_info": "", "log_verbose": "", "log_debug": "", "log_debug2": "", "log_debug3": "", "log_debug4": "",
    "log_user": "Log a formatted message for the user.",
    "time_str2mins": "Slurm's time string (10, 1:30:00, 2-00:00:00) in minutes.",
    "set_bundle_path": "The bundle the step runs (where the script staged it).",
    "set_root_path": "The rootfs the step runs.",
    "allocator_command": "Run a shell command on the login node in the job's environment: status, output.",
    "remote_command": "Run a shell command on the job's first node: status, output.",
    "cache_image": "Make or find the image cache entry of config_file's rootfs and rewrite config_file to run "
                   "from it with private overlays under upper_dir: the cached rootfs, or nil and why.",
}
HOOKS = {
    "slurm_scrun_stage_in(id, bundle, spool_dir, config_file, job_id, user_id, group_id, job_env)":
        "Called once the job is granted, before create returns: stage the bundle where the nodes see it. "
        "Return slurm.SUCCESS, or slurm.ERROR to fail create (the job is released).",
    "slurm_scrun_stage_out(id, bundle, orig_bundle, root_path, orig_root_path, spool_dir, config_file, "
    "job_id, user_id, group_id)":
        "Called at delete, before the job is released: copy results back, remove the staged copy.",
}


def esc(text: str) -> str:
    """roff: backslashes and leading dots or quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)  # groff: ASCII input
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def header(name: str, section: int, title: str) -> list[str]:
    date = re.search(r"^## [0-9.]+ — (\S+)", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE).group(1)
    return [f'.TH {name.upper()} {section} "{date}" "scrun {__version__}" "{title}"']


def tagged(term: str, body: str) -> list[str]:
    return [".TP", f"\\fB{esc(term)}\\fR", esc(body)]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if (isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)) or not action.option_strings
                or action.help == argparse.SUPPRESS):
            continue
        metavar = action.metavar or ("{" + ",".join(action.choices) + "}" if action.choices else "")
        metavar = f" {metavar}" if metavar else ""
        out += tagged(", ".join(action.option_strings) + metavar, action.help or "")
    return out


def scrun_1() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = header("scrun", 1, "User Commands")
    lines += [".SH NAME", "scrun \\- OCI runtime that runs each container as a Slurm job",
              ".SH SYNOPSIS", f"\\fB{esc(parser.usage)}\\fR",
              ".SH DESCRIPTION",
              esc("podman (through conmon) and docker (through containerd's shim) call scrun as they call runc or "
                  "crun. create gets a job allocation and stages the bundle where the compute nodes see it; start "
                  "launches the step (srun --container); state, kill, pause, resume and delete act on the job. A "
                  "per-container process, the anchor, holds the allocation, the step and the exit code; its pid is "
                  "the container's."),
              ".SH GLOBAL OPTIONS"]
    lines += _options(parser)
    lines += [".SH COMMANDS"]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, verb in sub.choices.items():
        if name not in helps:
            continue  # runc's verbs scrun refuses with a reason (hidden from --help too)
        lines += [".SS " + esc(name), f"\\fB{esc(verb.usage)}\\fR", ".br", esc(helps[name] or "")]
        lines += _options(verb)
    lines += [".SH ENVIRONMENT",
              esc("Each SCRUN_* variable sets one Slurm option of the container's job (salloc) or of its step "
                  "(srun), from the caller's environment or the container's own (-e, an image's ENV), which wins. "
                  "The engine's flags (--cpus, --memory, --device, --gpus, org.slurm.* annotations) count below both. "
                  "Variables marked caller only are refused when they come from the container.")]
    for row in OPTION_TABLE:
        where = "job" if row.target == JOB else "step"
        note = f" Caller only: {row.caller_only}." if row.caller_only else ""
        lines += tagged(row.env, f"{row.option} ({where}).{note}")
    lines += [".SH EXIT STATUS",
              esc("create, start, kill, delete and state exit 0 on success. The container's own exit code is what "
                  "the engine reports for the container (128+N for a signal N). scrun's errors print one line on "
                  "stderr and exit:")]
    for cls in sorted(_error_classes(), key=lambda c: (c.exit_code, c.__name__)):
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines += tagged(f"{cls.exit_code} ({cls.__name__})", doc)
    lines += [".SH FILES",
              *tagged("/etc/slurm/slurm.conf, oci.conf", "Slurm's configuration; SLURM_CONF or --slurm-conf name another."),
              *tagged("/etc/slurm/scrun.conf", "scrun's own settings: scrun.conf(5)."),
              *tagged("/etc/slurm/scrun.lua", "A site's staging hooks: scrun.conf(5)."),
              *tagged("/run/scrun, $XDG_RUNTIME_DIR/scrun", "State of each container (--root)."),
              ".SH DIFFERENCES FROM SLURM'S C SCRUN",
              esc("Exit codes as runc's; start returns once the step runs; ids are validated; a failed stage-in "
                  "fails create; every SCRUN_* variable works; errors reach the engine as JSON log lines; bundles "
                  "are staged to nodes that cannot see the login node; GPUs through CDI; pause and resume."),
              ".SH SEE ALSO", "scrun.conf(5), podman(1), docker(1), srun(1), salloc(1), oci.conf(5)"]
    return "\n".join(lines) + "\n"


def _error_classes() -> list[type]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.ScrunError)]


def lua_functions() -> list[tuple[str, str]]:
    prelude = (REPO / "src" / "scrun" / "lua" / "host.py").read_text()
    return re.findall(r"function slurm\.(\w+)\(([^)]*)\)", prelude)


def scrun_conf_5() -> str:
    lines = header("scrun.conf", 5, "File Formats")
    lines += [".SH NAME", "scrun.conf, scrun.lua \\- a site's settings and staging hooks for scrun",
              ".SH DESCRIPTION",
              esc("scrun.conf lives beside slurm.conf (Key=Value lines, # comments). Slurm's own daemons never "
                  "read it. Without it and without a scrun.lua, bundles must already be where the nodes see them."),
              ".SH SCRUN.CONF KEYS"]
    for key, text in SCRUN_CONF_KEYS.items():
        lines += tagged(key, text)
    lines += [".SH OCI.CONF KEYS SCRUN READS", esc("The rest of oci.conf is for the nodes' slurmstepd.")]
    for key, text in OCI_CONF_KEYS.items():
        lines += tagged(key, text)
    lines += [".SH SCRUN.LUA", esc("A scrun.lua beside slurm.conf takes the place of StageDir: real Lua 5.4. "
                                   "It defines:")]
    for hook, text in HOOKS.items():
        lines += tagged(hook, text)
    lines += [".SS The slurm table", esc("slurm.SUCCESS, slurm.ERROR, slurm.to_json, slurm.from_json and "
                                         "require 'json' (encode/decode that keep arrays and objects apart), and:")]
    for name, args in lua_functions():
        if name not in LUA_FUNCTIONS:
            raise SystemExit(f"tools/manpage.py: slurm.{name} has no text in LUA_FUNCTIONS")
        text = LUA_FUNCTIONS[name] or "As slurm.log_error, at its own level."
        lines += tagged(f"slurm.{name}({args})", text)
    lines += [".SH SEE ALSO", "scrun(1), oci.conf(5), slurm.conf(5)"]
    return "\n".join(lines) + "\n"


PAGES = {"scrun.1": scrun_1, "scrun.conf.5": scrun_conf_5}


def main(argv: list[str]) -> int:
    stale = []
    for name, make in PAGES.items():
        path, text = MAN / name, make()
        if argv == ["--check"]:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            MAN.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"man pages out of date: {', '.join(stale)}: run python3 tools/manpage.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
