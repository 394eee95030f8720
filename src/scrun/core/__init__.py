"""Pure decisions: ids, signals, statuses, exit codes, bundle parsing. No I/O beyond reading files handed in."""
