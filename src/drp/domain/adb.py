"""ADB (Analisis Dampak Bisnis, business impact analysis): the criticality of an IT service.

Pasal 3(3)(a) asks for the criticality of each IT service (Lampiran A, whose format is not
published). Seed 002 names the impact factors DJBC weighs: financial loss, legal exposure,
reputation and the number of users affected. Each factor is scored 1 (negligible) to 5 (severe);
the weighted mean of the scores gives the criticality level. Pasal 6(1)(a) depends on the top
level: a *sangat kritis* (very critical) service down nationally is a national partial disaster.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FACTORS: tuple[str, ...] = ("financial", "legal", "reputation", "users")
"""The impact factors of seed 002, in the order reports list them."""

DEFAULT_WEIGHTS: dict[str, float] = {
    "financial": 1.0,
    "legal": 1.0,
    "reputation": 1.0,
    "users": 1.0,
}


class Criticality(StrEnum):
    """ADB criticality levels, highest first (Indonesian names as the regulation uses them)."""

    SANGAT_KRITIS = "sangat_kritis"  # very critical
    KRITIS = "kritis"  # critical
    SEDANG = "sedang"  # moderate
    RENDAH = "rendah"  # low

    @property
    def rank(self) -> int:
        """0 for the most critical level; lower rank means more critical."""
        return list(Criticality).index(self)


# Lower bound of the weighted mean score for each level, most critical first.
THRESHOLDS: tuple[tuple[float, Criticality], ...] = (
    (4.0, Criticality.SANGAT_KRITIS),
    (3.0, Criticality.KRITIS),
    (2.0, Criticality.SEDANG),
    (0.0, Criticality.RENDAH),
)


@dataclass(frozen=True)
class Impact:
    """Impact scores, each 1 (negligible) to 5 (severe)."""

    financial: int
    legal: int
    reputation: int
    users: int

    def score(self, weights: dict[str, float] | None = None) -> float:
        """Weighted mean of the four factor scores."""
        w = weights or DEFAULT_WEIGHTS
        total = sum(w[f] for f in FACTORS)
        return sum(getattr(self, f) * w[f] for f in FACTORS) / total


def criticality(impact: Impact, weights: dict[str, float] | None = None) -> Criticality:
    """The ADB level for ``impact``: the first threshold the weighted mean reaches."""
    s = impact.score(weights)
    for bound, level in THRESHOLDS:
        if s >= bound:
            return level
    return Criticality.RENDAH  # unreachable: the last bound is 0
