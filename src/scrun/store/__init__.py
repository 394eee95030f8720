"""Container records under the state root, written atomically."""
