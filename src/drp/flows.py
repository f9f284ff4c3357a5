"""Load the flows in ``flows/`` (not a package: Prefect deploys them by file path)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

from drp.paths import repo_root

_LOADING = threading.RLock()


def load(name: str) -> ModuleType:
    """Import ``flows/<name>.py`` once and return the module. Under a lock: the module is in
    ``sys.modules`` before it has run, and a second thread must not take it half made."""
    key = f"drp_flows_{name}"
    with _LOADING:
        if key in sys.modules:
            return sys.modules[key]
        return _load(key, name)


def _load(key: str, name: str) -> ModuleType:
    path = repo_root() / "flows" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load flow file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module
