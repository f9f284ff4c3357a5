"""Where this checkout is: the repository root, which holds runbooks/, playbooks/, flows/."""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The checkout this package runs from (src/drp/paths.py -> repo)."""
    return Path(__file__).resolve().parents[2]
