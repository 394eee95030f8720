"""Settings: slurm.conf, oci.conf, SCRUN_* environment and flags turned into one frozen object."""
