"""``python -m modelport``."""

from modelport.cli.main import run

run()
