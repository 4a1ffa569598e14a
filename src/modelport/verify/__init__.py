"""Verification: compare outputs across models and runtimes."""
