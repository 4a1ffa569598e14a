"""pytest-playwright drives Debian's Chromium (setup installs it; playwright's own browser download is not
reachable here)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is missing: run scripts/setup_env.sh (it installs it with apt)"
    return {**browser_type_launch_args, "executable_path": chromium, "args": ["--no-sandbox"]}
