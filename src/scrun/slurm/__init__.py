"""Slurm layer: pure argv builders and output parsers, and the one place that runs Slurm commands."""
