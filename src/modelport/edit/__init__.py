"""Model editing tools (one module per edit)."""
