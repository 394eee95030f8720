#!/bin/sh
# An OCI runtime that writes down how the engine calls it, then runs scrun:
#   podman --runtime "$PWD/tools/trace-runtime.sh" run --rm IMAGE true
# One line per call in /tmp/scrun-runtime-trace.log (engines pass no environment to say where):
# the caller, argv, the names of the environment variables it got, and where its stdio goes.
fds="0=$(readlink /proc/$$/fd/0) 1=$(readlink /proc/$$/fd/1) 2=$(readlink /proc/$$/fd/2)"
printf '[%s] %s    {env: %s} {fds %s}\n' "$(cat /proc/$PPID/comm 2>/dev/null)" "$*" \
    "$(env | cut -d= -f1 | sort | tr '\n' ' ')" "$fds" >> /tmp/scrun-runtime-trace.log
exec /usr/local/bin/scrun "$@"
