"""Load the flows in ``flows/`` (not a package: Prefect deploys them by file path)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from drp.lab.config import repo_root


def load(name: str) -> ModuleType:
    """Import ``flows/<name>.py`` once and return the module."""
    key = f"drp_flows_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = repo_root() / "flows" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load flow file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
