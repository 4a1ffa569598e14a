"""Target rules (being written)."""
