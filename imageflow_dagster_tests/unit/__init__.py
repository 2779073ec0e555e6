"""Unit layer: the pure modules tested directly, no services (`make test-unit`, a few seconds)."""
