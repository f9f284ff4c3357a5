"""Settings shared by every test: nothing writes outside a temporary directory."""

from __future__ import annotations

import os
import tempfile

# Prefect (used by later e2e tests) must never write into ~/.prefect or phone home.
_prefect_home = tempfile.mkdtemp(prefix="drp-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _prefect_home)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
