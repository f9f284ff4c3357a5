"""Facility signals of the lab's DC: power, server-area temperatures, national network.

A JSON file that probes read and ``drp lab break`` writes. Its shape is the one
:func:`drp.domain.classification.signals_from_mapping` reads for the DC's part of the signals.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from drp.lab.config import LabConfig

NORMAL_CELSIUS = 23.5
# Four zones of the server area with unequal areas (m²): weighting by area matters.
ZONES: tuple[tuple[str, float], ...] = (("A", 120.0), ("B", 80.0), ("C", 100.0), ("D", 100.0))


def normal() -> dict[str, Any]:
    return {
        "dc_power": True,
        "national_network": True,
        "server_zones": [{"zone": z, "area_m2": a, "celsius": NORMAL_CELSIUS} for z, a in ZONES],
    }


def read(cfg: LabConfig) -> dict[str, Any]:
    try:
        return json.loads(cfg.facility_file.read_text())
    except FileNotFoundError:
        return normal()


def write(cfg: LabConfig, signals: dict[str, Any]) -> None:
    path: Path = cfg.facility_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(signals, indent=2) + "\n")
    os.replace(tmp, path)


def heat(signals: dict[str, Any], percent: float, celsius: float) -> tuple[dict[str, Any], float]:
    """Raise the first zones to ``celsius`` until they cover at least ``percent`` of the area.

    Returns the new signals and the share of the area actually heated (zones are indivisible).
    """
    zones = signals["server_zones"]
    total = sum(z["area_m2"] for z in zones)
    target = total * percent / 100.0
    heated = 0.0
    for zone in zones:
        if heated >= target - 1e-9 or math.isclose(heated, target):
            zone["celsius"] = NORMAL_CELSIUS
            continue
        zone["celsius"] = celsius
        heated += zone["area_m2"]
    return signals, 100.0 * heated / total if total else 0.0
