#!/bin/bash
# The main job: a real `podman run` whose container runs as a Slurm job through scrun.
set -u
echo "+ podman --runtime scrun run --rm localhost/busybox:latest sh -c 'echo hello from \$(hostname) in job \$SLURM_JOB_ID; exit 3'"
podman --runtime scrun run --rm localhost/busybox:latest \
    sh -c 'echo hello from $(hostname) in job $SLURM_JOB_ID; exit 3'
code=$?
echo "exit code: $code (the container said exit 3)"
[ "$code" -eq 3 ]
