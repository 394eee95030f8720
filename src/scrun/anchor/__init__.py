"""The per-container anchor: holds the allocation and the step, serves start/kill/delete."""
