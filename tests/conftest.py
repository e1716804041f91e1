"""Shared test helpers: where ../shared is, and small definitions in text."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

# In CI the property tests run the same examples every time, so a run's
# verdict is about the change, not the dice; locally they explore afresh.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEFINITIONS = ROOT / "definitions"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read the shared fixtures from ../shared beside the project")
    return path


HEAD = """\
format: tinhgon/1
code: T-1
name: Thủ tục thử
version: 1
"""


def definition_text(body: str, head: str = HEAD) -> str:
    """A definition: the standard head plus ``body`` (dedented)."""
    return head + textwrap.dedent(body)
