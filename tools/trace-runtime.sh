#!/bin/sh
# An OCI runtime that writes down how the engine calls it, then runs scrun:
#   podman --runtime "$PWD/tools/trace-runtime.sh" run --rm IMAGE true
# One line per call in /tmp/scrun-runtime-trace.log (engines pass no environment to say where):
# the caller, argv, the names of the environment variables it got, and where its stdio goes.
log=/tmp/scrun-runtime-trace.log
{
    printf '[%s] %s' "$(cat /proc/$PPID/comm 2>/dev/null)" "$*"
    printf '    {env: %s}' "$(env | cut -d= -f1 | sort | tr '\n' ' ')"
    printf ' {fds 0=%s 1=%s 2=%s}\n' "$(readlink /proc/$$/fd/0)" "$(readlink /proc/$$/fd/1)" "$(readlink /proc/$$/fd/2)"
} >> "$log"
exec /usr/local/bin/scrun "$@"
