"""The command-line interface: one thin module per verb over the public API."""
