"""Fast path for what engines call after `create`: state, start, kill, delete, and --version.

argparse, dataclasses, logging and json cost ~35 ms of imports per call — five times a bare
Python start — and podman calls `state` on every ps/inspect. This path accepts only the plain
runc grammar those calls use (global options, verb, the verb's own flags, id). Anything else —
help, unknown options, abbreviations, wrong arity — returns None and goes to the argparse
parser, which stays the single definition of the command line and of its error messages.
"""
from __future__ import annotations

_VALUE_GLOBALS = {"--root": "root", "--log": "log", "--log-format": "log_format", "-f": "slurm_conf",
                  "--slurm-conf": "slurm_conf", "--cgroup-manager": "cgroup_manager"}
_FLAG_GLOBALS = {"--debug", "--systemd-cgroup", "--rootless", "-v"}
_VERB_FLAGS = {"state": {}, "start": {}, "kill": {"-a": "all", "--all": "all"}, "delete": {"-f": "force", "--force": "force"},
               "create": {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring", "--no-subreaper": "no_subreaper"}}
# create's options that take a value (runc's spelling) → attribute.
_CREATE_VALUES = {"-b": "bundle", "--bundle": "bundle", "--pid-file": "pid_file", "--console-socket": "console_socket",
                  "--preserve-fds": "preserve_fds", "--pidfd-socket": "pidfd_socket"}
_VERB_ARITY = {"state": (1, 1), "start": (1, 1), "kill": (1, 2), "delete": (1, 1), "create": (1, 1)}


class FastArgs:
    """The attributes the verbs read, as argparse would set them."""

    def __init__(self) -> None:
        self.root = self.log = self.log_format = self.slurm_conf = self.cgroup_manager = None
        self.debug = False
        self.verbose = 0
        self.verb: str | None = None
        self.all = self.force = False
        self.id = ""
        self.signal = "SIGTERM"
        self.bundle = self.pid_file = self.console_socket = self.pidfd_socket = None
        self.preserve_fds = 0
        self.no_pivot = self.no_new_keyring = self.no_subreaper = False
        self.prestarted = None  # create: the anchor started before anything else


def parse_fast(argv: list[str]) -> FastArgs | None:
    args = FastArgs()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        word = argv[i]
        name, eq, value = word.partition("=")
        if name in _VALUE_GLOBALS:
            if not eq:
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            setattr(args, _VALUE_GLOBALS[name], value)
        elif name == "--rootless":
            if not eq and i + 1 < len(argv) and argv[i + 1].lower() in ("true", "false"):
                i += 1
        elif word in _FLAG_GLOBALS:
            args.debug = args.debug or word == "--debug"
            args.verbose += word == "-v"
        else:
            return None
        i += 1
    if i >= len(argv) or argv[i] not in _VERB_FLAGS:
        return None
    args.verb = argv[i]
    flags = _VERB_FLAGS[args.verb]
    positional = []
    rest = argv[i + 1:]
    j = 0
    while j < len(rest):
        word = rest[j]
        j += 1
        name, eq, value = word.partition("=")
        if args.verb == "create" and not positional and name in _CREATE_VALUES:
            if not eq:
                if j >= len(rest):
                    return None
                value, j = rest[j], j + 1
            if name == "--preserve-fds":
                if not value.isdigit():
                    return None
                value = int(value)
            setattr(args, _CREATE_VALUES[name], value)
        elif word.startswith("-") and not positional and word in flags:
            setattr(args, flags[word], True)
        elif word.startswith("-"):
            return None  # options after the id, unknown flags, `--`: let argparse decide
        else:
            positional.append(word)
    low, high = _VERB_ARITY[args.verb]
    if not low <= len(positional) <= high:
        return None
    args.id = positional[0]
    if len(positional) == 2:
        args.signal = positional[1]
    return args


class FastSettings:
    """The part of Settings the post-create verbs use: the state root; the rest (only a
    container this login node lost needs it, cli.orphans) when first asked for."""

    def __init__(self, root: str, slurm_conf_flag: str | None = None):
        self.root = root
        self._slurm_conf_flag = slurm_conf_flag

    @property
    def identity(self):
        from scrun.config.paths import read_identity

        return read_identity()

    @property
    def slurm_conf(self) -> str:
        import os

        from scrun.config.defaults import resolve_slurm_conf

        return resolve_slurm_conf(self._slurm_conf_flag, os.environ)


def resolve_root(args: FastArgs) -> str:
    import os

    if args.root:
        return os.path.abspath(args.root)
    from scrun.config.paths import default_root, read_identity

    return default_root(read_identity(), os.environ)[0]


def run_verb(args: FastArgs) -> int:
    if args.verb == "create":
        # Fork the anchor before importing anything else: it imports what it needs (asyncio)
        # while create imports and checks, instead of after.
        import os

        from scrun.anchor.child import start_anchor
        from scrun.config.defaults import resolve_slurm_conf

        args.prestarted = start_anchor(resolve_slurm_conf(args.slurm_conf, os.environ))
        from scrun.cli import create
        from scrun.cli.context import build_settings

        try:
            settings = build_settings(args)
            from scrun.log import setup_logging

            setup_logging(settings.log)  # create talks on stderr: progress of a pending job
        except BaseException:
            args.prestarted.discard()
            raise
        return create.run(settings, args)
    if args.verb == "state":
        from scrun.cli import state as verb
    elif args.verb == "start":
        from scrun.cli import start as verb
    elif args.verb == "kill":
        from scrun.cli import kill as verb
    else:
        from scrun.cli import delete as verb
    return verb.run(FastSettings(resolve_root(args), args.slurm_conf), args)
