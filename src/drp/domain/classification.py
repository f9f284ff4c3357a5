"""Disaster classification: which abnormal IT condition holds, who declares it, what follows.

PER-19/BC/2023 sorts an abnormal IT condition (Kondisi TIK Tidak Normal, Pasal 4) into three
categories: a partial disaster that is local to one customs office (Pasal 5), a partial disaster
that is national (Pasal 6), and a catastrophic disaster that hits the DC infrastructure itself
(Pasal 7). Each category has its own declarer, declaration basis, rapid-assessment report
(laporan kaji cepat), notification and ordered stages of handling; national and catastrophic
disasters also start the coordination of Pasal 13.

Like patroni's ``quorum.py`` this module is a pure resolver: :func:`classify` takes plain signals
and returns an :class:`Assessment` whose every trigger and note carries a sentence that explains
it. Nothing here reads a sensor or declares anything; the caller does, with the decision in hand.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, TypeVar

from drp.domain.adb import Criticality
from drp.errors import DrpError, RunbookError

_T = TypeVar("_T")

HEAT_THRESHOLD_C = 30.0
"""Pasal 7(1)(b): server-area temperature that must be *exceeded* (melebihi 30 °C)."""

HOT_AREA_SHARE = Fraction(1, 2)
"""Pasal 7(1)(b): share of the DC server area that must be too hot (50% atau lebih)."""


# --- Vocabulary -------------------------------------------------------------------------------


class DisasterCategory(StrEnum):
    """The three disaster categories of Pasal 4, least severe first."""

    PARSIAL_LOKAL = "parsial_lokal"  # partial, local (Pasal 5)
    PARSIAL_NASIONAL = "parsial_nasional"  # partial, national (Pasal 6)
    KATASTROPIK = "katastropik"  # catastrophic (Pasal 7)

    @property
    def severity(self) -> int:
        """Higher is more severe; when several categories hold, the highest wins."""
        return list(DisasterCategory).index(self)

    @property
    def label_id(self) -> str:
        """The regulation's own name for the category."""
        return _CATEGORY_LABELS[self][0]

    @property
    def label_en(self) -> str:
        """The English meaning, for operators and auditors who do not read Indonesian."""
        return _CATEGORY_LABELS[self][1]

    @property
    def article(self) -> str:
        """The article that governs the category (``Pasal 7`` for katastropik)."""
        return f"Pasal {_PROFILES[self].pasal}"


_CATEGORY_LABELS: dict[DisasterCategory, tuple[str, str]] = {
    DisasterCategory.PARSIAL_LOKAL: (
        "Bencana TIK Parsial bersifat lokal",
        "local partial IT disaster",
    ),
    DisasterCategory.PARSIAL_NASIONAL: (
        "Bencana TIK Parsial bersifat nasional",
        "national partial IT disaster",
    ),
    DisasterCategory.KATASTROPIK: ("Bencana TIK Katastropik", "catastrophic IT disaster"),
}


class Role(StrEnum):
    """The officials the regulation gives a part in declaring and reporting a disaster."""

    KEPALA_KANTOR = "kepala_kantor"  # head of a customs and excise office (Pasal 5)
    DIREKTUR = "direktur"  # the IT Director (Pasal 1 angka 19; Pasal 6, 7)
    PEJABAT_DITUNJUK = "pejabat_ditunjuk"  # a designated official: writes reports, never declares

    @property
    def label_id(self) -> str:
        """The regulation's own name for the role."""
        return _ROLE_LABELS[self][0]

    @property
    def label_en(self) -> str:
        """The English meaning of the role."""
        return _ROLE_LABELS[self][1]


_ROLE_LABELS: dict[Role, tuple[str, str]] = {
    Role.KEPALA_KANTOR: ("Kepala Kantor Bea dan Cukai", "head of the customs and excise office"),
    Role.DIREKTUR: (
        "Direktur (bidang teknologi informasi)",
        "IT Director",
    ),
    Role.PEJABAT_DITUNJUK: (
        "Pejabat Bea dan Cukai yang ditunjuk",
        "designated customs and excise official",
    ),
}


CATEGORY_ALIASES: dict[str, DisasterCategory] = {
    "local": DisasterCategory.PARSIAL_LOKAL,
    "national": DisasterCategory.PARSIAL_NASIONAL,
    "catastrophic": DisasterCategory.KATASTROPIK,
}
"""English names an operator may type for a category; the regulation's ids stay the records'."""

ROLE_ALIASES: dict[str, Role] = {
    "director": Role.DIREKTUR,
    "office_head": Role.KEPALA_KANTOR,
    "designated_official": Role.PEJABAT_DITUNJUK,
}
"""English names an operator may type for a role."""

DECLARING_ROLES: tuple[Role, ...] = (Role.DIREKTUR, Role.KEPALA_KANTOR)
"""The roles that declare (Pasal 5-7) and approve; a designated official only writes reports."""


class UnknownChoice(DrpError, ValueError):
    """A name that is none of the allowed choices; the message lists them (and their aliases).

    A :class:`ValueError` too, so that parameter validation (pydantic, Prefect) reports it as a
    validation error with this message rather than a crash."""

    def __init__(self, what: str, given: object, choices: Sequence[str], aliases: Sequence[str]):
        self.what, self.given, self.choices = what, given, tuple(choices)
        also = f" (or in English: {', '.join(aliases)})" if aliases else ""
        super().__init__(f"{what} {given!r} is not one of {', '.join(choices)}{also}")


def _token(value: object) -> str:
    """``" Parsial-Lokal "`` -> ``"parsial_lokal"``: case, spaces and dashes do not matter."""
    return str(value).strip().lower().replace("-", "_").replace(" ", "_")


def category_from(value: DisasterCategory | str) -> DisasterCategory:
    """The category a person or a parameter names: the regulation's id (``parsial_lokal``,
    ``parsial_nasional``, ``katastropik``) or its English alias (``local``, ``national``,
    ``catastrophic``); anything else raises :class:`UnknownChoice` naming the choices."""
    if isinstance(value, DisasterCategory):
        return value
    token = _token(value)
    known = {c.value: c for c in DisasterCategory} | CATEGORY_ALIASES
    if token not in known:
        raise UnknownChoice(
            "category", value, [c.value for c in DisasterCategory], list(CATEGORY_ALIASES)
        )
    return known[token]


def role_from(value: Role | str, allowed: Sequence[Role] = DECLARING_ROLES) -> Role:
    """The role a person or a parameter names (``direktur``, ``kepala_kantor``, or ``director``,
    ``office_head``), among ``allowed``; anything else raises :class:`UnknownChoice`."""
    role = value if isinstance(value, Role) else None
    if role is None:
        token = _token(value)
        role = {r.value: r for r in Role}.get(token) or ROLE_ALIASES.get(token)
    if role is None or role not in allowed:
        aliases = [a for a, r in ROLE_ALIASES.items() if r in allowed]
        raise UnknownChoice("role", value, [r.value for r in allowed], aliases)
    return role


@dataclass(frozen=True)
class Term:
    """Something the regulation names: a stable machine id, both labels, and where it is said.

    The id never changes once published (documents, ledgers and Slack messages refer to it);
    the labels may be reworded.
    """

    id: str
    label_id: str
    label_en: str
    article: str


@dataclass(frozen=True)
class Stage(Term):
    """One stage of handling and recovery, in the order the regulation lists them."""


@dataclass(frozen=True)
class Party(Term):
    """An organisation or group of people that acts, is notified or is coordinated with."""


@dataclass(frozen=True)
class BasisItem(Term):
    """One ground a declaration may rest on, with the evidence supplied for it (maybe none)."""

    evidence: tuple[str, ...] = ()


# --- Input signals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceOutage:
    """An IT service down nationally, with its ADB criticality (Pasal 6(1)(a))."""

    service_id: str
    criticality: Criticality


@dataclass(frozen=True)
class AgencyOutage:
    """An abnormal condition of a system owned by an agency integrated with SKP (Pasal 6(1)(b)).

    ``critical_national_impact`` is the IT directorate's judgement: only an outage that hits IT
    services critically and nationally makes a national disaster.
    """

    agency: str
    system: str
    critical_national_impact: bool


@dataclass(frozen=True)
class ZoneReading:
    """The temperature of one zone of the DC server area, with the zone's floor area.

    Pasal 7(1)(b) counts *area*, not zones: a small hot zone weighs less than a large one.
    """

    zone: str
    area_m2: float
    celsius: float

    def __post_init__(self) -> None:
        """Refuse readings that would make the area weighting meaningless."""
        if not (isinstance(self.area_m2, int | float) and self.area_m2 > 0):
            raise RunbookError(
                f"zone {self.zone!r}: area_m2 must be a positive number of square metres",
                problems=[f"{self.zone}.area_m2: expected a number above 0, got {self.area_m2!r}"],
            )
        if not (isinstance(self.celsius, int | float) and math.isfinite(self.celsius)):
            raise RunbookError(
                f"zone {self.zone!r}: celsius must be a finite number",
                problems=[f"{self.zone}.celsius: expected a number, got {self.celsius!r}"],
            )


@dataclass(frozen=True)
class Basis:
    """What a declaration rests on (Pasal 5(4), 6(3)): tickets, reports, analysis, urgency.

    ``tickets`` are numbers from the incident application (Aplikasi Pengaduan Gangguan, Pasal
    5(3)); the reports are short texts naming their source; ``urgency`` and ``document_count``
    describe the service urgency and number of documents waiting (Pasal 5(4)(e)).
    """

    tickets: tuple[str, ...] = ()
    office_reports: tuple[str, ...] = ()
    service_user_reports: tuple[str, ...] = ()
    agency_reports: tuple[str, ...] = ()
    it_directorate_analysis: str | None = None
    urgency: str | None = None
    document_count: int | None = None


@dataclass(frozen=True)
class Signals:
    """What is known about the IT condition right now; the defaults describe a normal condition.

    ``dc_power`` and ``national_network`` are True while supplied/connected, so that a missing
    signal never looks like a catastrophe.
    """

    offices_skp_down: tuple[str, ...] = ()
    office_head_judgements: tuple[str, ...] = ()
    services_down_nationally: tuple[ServiceOutage, ...] = ()
    agency_outages: tuple[AgencyOutage, ...] = ()
    dc_power: bool = True
    server_zones: tuple[ZoneReading, ...] = ()
    national_network: bool = True
    basis: Basis = field(default_factory=Basis)


# --- Output -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """A condition of Pasal 5(1), 6(1) or 7(1) that holds, and the sentence that shows it."""

    article: str
    reason: str
    category: DisasterCategory


@dataclass(frozen=True)
class NotificationDuty:
    """Who notifies whom of the disaster, how, and on which form (Lampiran C)."""

    sender: Role
    recipients: Party
    channel_id: str
    channel_en: str
    template: str
    article: str


@dataclass(frozen=True)
class RapidAssessmentDuty:
    """Who writes the rapid-assessment report (laporan kaji cepat, Lampiran B) and what it holds."""

    authors: tuple[Role, ...]
    contents: tuple[Term, ...]
    template: str
    article: str


@dataclass(frozen=True)
class Disaster:
    """A classified disaster: everything the regulation attaches to its category.

    ``triggers`` holds every condition that holds, including those of less severe categories;
    ``basis`` lists every ground the declaration article allows, with the evidence supplied
    for each (an empty one is a gap to fill); ``coordination`` is empty for a local disaster,
    since Pasal 13 applies to national and catastrophic ones only; ``affected_offices`` are the
    offices the signals name (a national or catastrophic disaster may name none: it hits all).
    """

    category: DisasterCategory
    triggers: tuple[Trigger, ...]
    declarer_role: Role
    declaration_article: str
    basis_article: str
    basis: tuple[BasisItem, ...]
    handled_by: Party
    stages: tuple[Stage, ...]
    coordination: tuple[Party, ...]
    notification: NotificationDuty
    rapid_assessment: RapidAssessmentDuty
    affected_offices: tuple[str, ...]


@dataclass(frozen=True)
class Assessment:
    """The result of :func:`classify`: a disaster or none, and notes that explain near misses."""

    disaster: Disaster | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """A yes or no, with the sentence that justifies it."""

    allowed: bool
    reason: str


# --- What each category brings (Pasal 5-7, 13) ------------------------------------------------

_STAGE_TERMS: dict[str, tuple[str, str]] = {
    "prosedur_kondisi_tidak_normal": (
        "prosedur penanganan Kondisi TIK Tidak Normal",
        "abnormal IT condition handling procedure",
    ),
    "drp": (
        "Disaster Recovery Plan (DRP)",
        "disaster recovery plan: restore operability at the alternate site (DRC)",
    ),
    "pelayanan_manual": ("pelayanan manual", "manual service"),
    "dokumen_cetak": (
        "dokumen kepabeanan dan/atau cukai berupa cetakan (hardcopy)",
        "hard-copy customs and/or excise documents",
    ),
}

_PARTIAL_STAGES = ("prosedur_kondisi_tidak_normal", "drp", "pelayanan_manual", "dokumen_cetak")
_CATASTROPHIC_STAGES = ("drp", "pelayanan_manual", "dokumen_cetak")

_COORDINATION: tuple[Party, ...] = tuple(
    Party(ident, label_id, label_en, f"Pasal 13 huruf {letter}")
    for letter, ident, label_id, label_en in (
        (
            "a",
            "direktorat_teknis_kepabeanan",
            "direktorat di bidang teknis kepabeanan",
            "directorate for customs technique",
        ),
        (
            "b",
            "direktorat_teknis_fasilitas_cukai",
            "direktorat di bidang teknis dan fasilitas cukai",
            "directorate for excise technique and facilities",
        ),
        (
            "c",
            "direktorat_fasilitas_kepabeanan",
            "direktorat di bidang fasilitas kepabeanan",
            "directorate for customs facilities",
        ),
        (
            "d",
            "direktorat_penindakan_penyidikan",
            "direktorat di bidang penindakan dan penyidikan",
            "directorate for enforcement and investigation",
        ),
        (
            "e",
            "direktorat_komunikasi_bimbingan_pengguna_jasa",
            "direktorat di bidang komunikasi dan bimbingan pengguna jasa",
            "directorate for communication with and guidance of service users",
        ),
        (
            "f",
            "direktorat_kepatuhan_internal",
            "direktorat di bidang kepatuhan internal",
            "directorate for internal compliance",
        ),
        (
            "g",
            "instansi_teknis_sistem_terintegrasi",
            "instansi teknis terkait pemilik sistem yang terintegrasi dengan SKP dan Portal "
            "Pengguna Jasa",
            "technical agencies owning systems integrated with SKP and the service-user portal",
        ),
    )
)

_REPORT_CONTENTS: tuple[tuple[str, str, str, str], ...] = (
    ("a", "kronologi", "kronologi singkat Kondisi TIK Tidak Normal", "brief chronology"),
    ("b", "penilaian_kerusakan", "penilaian terhadap kerusakan", "damage assessment"),
    (
        "c",
        "analisis_penyebab",
        "hasil analisis penyebab terjadinya Kondisi TIK Tidak Normal",
        "root-cause analysis",
    ),
    ("d", "tindakan_penanganan", "tindakan penanganan yang diambil", "actions taken"),
)

_OFFICE = Party("kantor_bea_cukai", "Kantor Bea dan Cukai", "the customs and excise office", "")
_IT_DIRECTORATE = Party(
    "direktorat_teknologi_informasi",
    "direktorat yang melaksanakan tugas dan fungsi di bidang teknologi informasi",
    "the IT directorate",
    "",
)
_SERVICE_USERS = Party(
    "pengguna_jasa", "pengguna jasa", "service users (importers, exporters, brokers)", ""
)
_OFFICE_HEADS = Party(
    "kepala_kantor_bea_cukai",
    "Kepala Kantor Bea dan Cukai",
    "heads of the customs and excise offices",
    "",
)


@dataclass(frozen=True)
class _Profile:
    """The articles and actors of one category, so that building a Disaster is a table lookup."""

    pasal: int
    declarer: Role
    declaration_ayat: int
    basis_ayat: int
    report_ayat: int
    contents_ayat: int
    notification_ayat: int
    stages_ayat: int
    stage_ids: tuple[str, ...]
    handled_by: Party
    recipients: Party
    coordinates: bool


_PROFILES: dict[DisasterCategory, _Profile] = {
    DisasterCategory.PARSIAL_LOKAL: _Profile(
        5, Role.KEPALA_KANTOR, 2, 4, 6, 7, 9, 11, _PARTIAL_STAGES, _OFFICE, _SERVICE_USERS, False
    ),
    DisasterCategory.PARSIAL_NASIONAL: _Profile(
        6, Role.DIREKTUR, 2, 3, 4, 5, 7, 9, _PARTIAL_STAGES, _IT_DIRECTORATE, _OFFICE_HEADS, True
    ),
    DisasterCategory.KATASTROPIK: _Profile(
        7,
        Role.DIREKTUR,
        2,
        3,
        4,
        5,
        7,
        9,
        _CATASTROPHIC_STAGES,
        _IT_DIRECTORATE,
        _OFFICE_HEADS,
        True,
    ),
}

_LETTERS = "abcdefg"


def _article(pasal: int, ayat: int, huruf: str | None = None) -> str:
    """``Pasal 5(4)(a)``: the citation style used across the platform's documents."""
    return f"Pasal {pasal}({ayat})" + (f"({huruf})" if huruf else "")


# --- Heat (Pasal 7(1)(b)) ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Heat:
    """Area sums, exact, so that 50% is 50% and not 49.99999999."""

    hot_area: Fraction
    total_area: Fraction
    hot_zones: tuple[str, ...]
    zones_at_threshold: tuple[str, ...]


def _exact(value: float) -> Fraction:
    """The decimal the operator wrote (0.1 stays 1/10), not its binary approximation."""
    return Fraction(str(value))


def _heat(zones: Sequence[ZoneReading], threshold_c: float) -> _Heat:
    hot = [z for z in zones if z.celsius > threshold_c]
    return _Heat(
        hot_area=sum((_exact(z.area_m2) for z in hot), Fraction(0)),
        total_area=sum((_exact(z.area_m2) for z in zones), Fraction(0)),
        hot_zones=tuple(z.zone for z in hot),
        zones_at_threshold=tuple(z.zone for z in zones if z.celsius == threshold_c),
    )


def hot_area_fraction(
    zones: Sequence[ZoneReading], threshold_c: float = HEAT_THRESHOLD_C
) -> float | None:
    """Share of the server area whose zone is *above* ``threshold_c``, weighted by area.

    None when no zone is reported: an unknown temperature is not a cool one, and callers must
    not read it as 0%. A zone at exactly the threshold is not above it (Pasal 7(1)(b):
    "melebihi", exceeds).
    """
    if not zones:
        return None
    heat = _heat(zones, threshold_c)
    return float(heat.hot_area / heat.total_area)


def _percent(share: Fraction) -> str:
    """Truncated, never rounded up, so that 49.999% is never shown as 50%."""
    value = Decimal(share.numerator * 100) / Decimal(share.denominator)
    text = str(value.quantize(Decimal("0.01"), rounding=ROUND_DOWN))
    return text.rstrip("0").rstrip(".") if "." in text else text


def _num(value: float | Fraction) -> str:
    return f"{float(value):g}"


def _heat_finding(zones: Sequence[ZoneReading], threshold_c: float) -> _Finding:
    article = _article(7, 1, "b")
    if not zones:
        return _Finding(
            notes=(
                f"No server-zone temperatures were reported, so {article} (50% or more of the DC "
                f"server area above {_num(threshold_c)} °C) could not be assessed and is not "
                "counted as a trigger.",
            )
        )
    heat = _heat(zones, threshold_c)
    share = heat.hot_area / heat.total_area
    measured = (
        f"{_percent(share)}% of the DC server area ({_num(heat.hot_area)} of "
        f"{_num(heat.total_area)} m²) is above {_num(threshold_c)} °C"
    )
    if heat.hot_zones:
        measured += f" (zones {', '.join(heat.hot_zones)})"
    if share >= HOT_AREA_SHARE:
        return _Finding(triggers=(Trigger(article, measured, DisasterCategory.KATASTROPIK),))
    notes = []
    if heat.hot_zones:
        notes.append(f"{measured}; {article} needs 50% or more, so it does not hold.")
    if heat.zones_at_threshold:
        notes.append(
            f"Zones {', '.join(heat.zones_at_threshold)} read exactly {_num(threshold_c)} °C, "
            f"which is not above {_num(threshold_c)} °C ({article}: 'melebihi', exceeds)."
        )
    return _Finding(notes=tuple(notes))


# --- Classification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    """What one group of conditions contributes: triggers that hold, notes on those that don't."""

    triggers: tuple[Trigger, ...] = ()
    notes: tuple[str, ...] = ()


def _local_finding(signals: Signals) -> _Finding:
    triggers = []
    if signals.offices_skp_down:
        triggers.append(
            Trigger(
                _article(5, 1, "a"),
                "SKP does not work, in part or in whole, at " + _offices(signals.offices_skp_down),
                DisasterCategory.PARSIAL_LOKAL,
            )
        )
    if signals.office_head_judgements:
        triggers.append(
            Trigger(
                _article(5, 1, "b"),
                "the office head judged that another condition keeps SKP from working as it "
                "should at " + _offices(signals.office_head_judgements),
                DisasterCategory.PARSIAL_LOKAL,
            )
        )
    return _Finding(triggers=tuple(triggers))


def _offices(codes: Sequence[str]) -> str:
    return ("office " if len(codes) == 1 else "offices ") + ", ".join(codes)


def _national_finding(signals: Signals) -> _Finding:
    triggers, notes = [], []
    very_critical = [
        s.service_id
        for s in signals.services_down_nationally
        if s.criticality is Criticality.SANGAT_KRITIS
    ]
    if very_critical:
        triggers.append(
            Trigger(
                _article(6, 1, "a"),
                "IT services of criticality sangat kritis are down nationally: "
                + ", ".join(very_critical),
                DisasterCategory.PARSIAL_NASIONAL,
            )
        )
    for outage in signals.services_down_nationally:
        if outage.criticality is not Criticality.SANGAT_KRITIS:
            notes.append(
                f"Service {outage.service_id} ({outage.criticality.value}) is down nationally, "
                f"but {_article(6, 1, 'a')} needs a service of criticality sangat kritis; it "
                "does not make a national disaster by itself."
            )
    critical = [a for a in signals.agency_outages if a.critical_national_impact]
    if critical:
        triggers.append(
            Trigger(
                _article(6, 1, "b"),
                "systems of integrated agencies are in an abnormal condition with critical "
                "national impact on IT services: "
                + ", ".join(f"{a.system} ({a.agency})" for a in critical),
                DisasterCategory.PARSIAL_NASIONAL,
            )
        )
    for outage in signals.agency_outages:
        if not outage.critical_national_impact:
            notes.append(
                f"{outage.system} ({outage.agency}) is in an abnormal condition without critical "
                f"national impact on IT services; {_article(6, 1, 'b')} does not hold for it."
            )
    return _Finding(tuple(triggers), tuple(notes))


def _catastrophic_finding(signals: Signals) -> _Finding:
    triggers = []
    if not signals.dc_power:
        triggers.append(
            Trigger(
                _article(7, 1, "a"),
                "there is no power supply to the DC area",
                DisasterCategory.KATASTROPIK,
            )
        )
    heat = _heat_finding(signals.server_zones, HEAT_THRESHOLD_C)
    triggers.extend(heat.triggers)
    if not signals.national_network:
        triggers.append(
            Trigger(
                _article(7, 1, "c"),
                "network devices have lost connectivity nationally",
                DisasterCategory.KATASTROPIK,
            )
        )
    return _Finding(tuple(triggers), heat.notes)


def classify(signals: Signals) -> Assessment:
    """Decide which disaster, if any, the signals show, and everything that follows from it.

    Every condition that holds is recorded as a trigger; the most severe category wins
    (katastropik > parsial_nasional > parsial_lokal), because the stronger declaration brings
    the wider response and includes the weaker one's offices.
    """
    findings = (_local_finding(signals), _national_finding(signals), _catastrophic_finding(signals))
    triggers = tuple(t for f in findings for t in f.triggers)
    notes = [n for f in findings for n in f.notes]
    if not triggers:
        notes.append(
            "No condition of Pasal 5(1), 6(1) or 7(1) holds: no disaster is to be declared."
        )
        return Assessment(None, tuple(notes))
    category = max((t.category for t in triggers), key=lambda c: c.severity)
    notes.extend(_precedence_notes(category, triggers))
    disaster = _disaster(category, triggers, signals)
    notes.extend(_declaration_notes(disaster, signals))
    return Assessment(disaster, tuple(notes))


def declare(category: DisasterCategory | str, signals: Signals) -> Assessment:
    """A disaster of ``category`` declared by the person entitled to judge it.

    The observed ``signals`` are classified too: when they show the declared category (or a more
    severe one) the triggers are kept; when they do not, the declaration stands on the
    declarer's judgement and basis, and a note says so plainly (an operator may know what no
    probe shows, as Pasal 5(1)(b) allows an office head; the record must not pretend otherwise).
    """
    category = category_from(category)
    observed = classify(signals)
    notes = list(observed.notes)
    triggers: tuple[Trigger, ...] = ()
    if observed.disaster is not None:
        triggers = tuple(t for t in observed.disaster.triggers if t.category is category)
        if observed.disaster.category.severity > category.severity:
            notes.append(
                f"The observed signals show a {observed.disaster.category.label_en}, more severe "
                f"than the declared {category.label_en}."
            )
    if not triggers:
        notes.append(
            f"No observed signal shows a {category.label_en}: the declaration rests on the "
            "declarer's judgement and the basis recorded with it."
        )
    disaster = _disaster(category, triggers, signals)
    return Assessment(disaster, tuple(notes))


def _precedence_notes(category: DisasterCategory, triggers: Sequence[Trigger]) -> list[str]:
    lower = [t.article for t in triggers if t.category is not category]
    if not lower:
        return []
    return [
        f"The {category.label_en} takes precedence; the less severe conditions that also hold "
        f"({', '.join(lower)}) are recorded as triggers too."
    ]


def _disaster(
    category: DisasterCategory, triggers: tuple[Trigger, ...], signals: Signals
) -> Disaster:
    p = _PROFILES[category]
    return Disaster(
        category=category,
        triggers=triggers,
        declarer_role=p.declarer,
        declaration_article=_article(p.pasal, p.declaration_ayat),
        basis_article=_article(p.pasal, p.basis_ayat),
        basis=_declaration_basis(category, signals.basis, triggers),
        handled_by=_with_article(p.handled_by, _article(p.pasal, p.stages_ayat)),
        stages=tuple(
            Stage(sid, *_STAGE_TERMS[sid], _article(p.pasal, p.stages_ayat, _LETTERS[i]))
            for i, sid in enumerate(p.stage_ids)
        ),
        coordination=_COORDINATION if p.coordinates else (),
        notification=NotificationDuty(
            sender=p.declarer,
            recipients=_with_article(p.recipients, _article(p.pasal, p.notification_ayat)),
            channel_id="surat dan/atau Media Digital",
            channel_en="letter and/or digital media",
            template="Lampiran C",
            article=_article(p.pasal, p.notification_ayat),
        ),
        rapid_assessment=RapidAssessmentDuty(
            authors=(p.declarer, Role.PEJABAT_DITUNJUK),
            contents=tuple(
                Term(ident, label_id, label_en, _article(p.pasal, p.contents_ayat, letter))
                for letter, ident, label_id, label_en in _REPORT_CONTENTS
            ),
            template="Lampiran B",
            article=_article(p.pasal, p.report_ayat),
        ),
        affected_offices=_unique((*signals.offices_skp_down, *signals.office_head_judgements)),
    )


def _with_article(party: Party, article: str) -> Party:
    return Party(party.id, party.label_id, party.label_en, article)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


_LOCAL_BASIS: tuple[tuple[str, str, str, str], ...] = (
    ("tiket", "tiket yang telah disampaikan lewat aplikasi pengaduan gangguan Layanan TIK",
     "ticket filed through the IT incident application", "tickets"),
    ("informasi_kantor", "informasi yang disampaikan oleh Kantor Bea dan Cukai",
     "report from the customs office", "office_reports"),
    ("informasi_pengguna_jasa", "informasi yang disampaikan oleh pengguna jasa",
     "report from service users", "service_user_reports"),
    ("informasi_instansi_teknis",
     "informasi yang disampaikan oleh instansi teknis terkait dengan sistem yang terintegrasi "
     "SKP dan Portal Pengguna Jasa",
     "report from technical agencies whose systems integrate with SKP and the service-user "
     "portal", "agency_reports"),
    ("urgensi_jumlah_dokumen",
     "urgensi pelayanan dan jumlah dokumen, setelah dikoordinasikan dengan direktorat di "
     "bidang teknologi informasi",
     "service urgency and number of documents, after coordination with the IT directorate",
     "urgency"),
)  # fmt: skip
"""Pasal 5(4)(a)-(e): the grounds a head of office may declare a local disaster on."""

_NATIONAL_BASIS: tuple[tuple[str, str, str, str], ...] = (
    ("tiket", "tiket yang telah disampaikan oleh Kantor Bea dan Cukai (Pasal 5 ayat (3))",
     "tickets filed by customs offices (Pasal 5(3))", "tickets"),
    ("informasi_kantor", "informasi yang disampaikan oleh Kantor Bea dan Cukai",
     "reports from customs offices", "office_reports"),
    ("informasi_instansi_teknis",
     "informasi yang disampaikan oleh instansi teknis terkait dengan sistem yang terintegrasi "
     "SKP dan Portal Pengguna Jasa",
     "reports from technical agencies whose systems integrate with SKP and the service-user "
     "portal", "agency_reports"),
    ("informasi_pengguna_jasa", "informasi yang disampaikan oleh pengguna jasa",
     "reports from service users", "service_user_reports"),
    ("analisis_direktorat_ti", "hasil analisis direktorat di bidang teknologi informasi",
     "the IT directorate's analysis", "it_directorate_analysis"),
)  # fmt: skip
"""Pasal 6(3)(a)-(e): the grounds the IT Director may declare a national disaster on."""


def _evidence(basis: Basis) -> dict[str, tuple[str, ...]]:
    """The supplied evidence, by the key the basis tables above refer to."""
    urgency = (basis.urgency,) if basis.urgency else ()
    if basis.document_count is not None:
        urgency += (f"{basis.document_count} documents waiting",)
    analysis = (basis.it_directorate_analysis,) if basis.it_directorate_analysis else ()
    return {
        "tickets": basis.tickets,
        "office_reports": basis.office_reports,
        "service_user_reports": basis.service_user_reports,
        "agency_reports": basis.agency_reports,
        "it_directorate_analysis": analysis,
        "urgency": urgency,
    }


def _partial_basis(
    pasal: int, ayat: int, rows: Sequence[tuple[str, str, str, str]], basis: Basis
) -> tuple[BasisItem, ...]:
    """Every ground the article allows, each with its evidence, so gaps show as empty ones."""
    evidence = _evidence(basis)
    return tuple(
        BasisItem(ident, label_id, label_en, _article(pasal, ayat, _LETTERS[i]), evidence[key])
        for i, (ident, label_id, label_en, key) in enumerate(rows)
    )


def _catastrophic_basis(triggers: Sequence[Trigger]) -> tuple[BasisItem, ...]:
    """Pasal 7(3): a catastrophic declaration rests on the Pasal 7(1) conditions themselves."""
    return tuple(
        BasisItem(
            "kondisi_" + t.article.removeprefix("Pasal ").replace("(", "_").replace(")", ""),
            f"kondisi {t.article}",
            f"the condition of {t.article}",
            _article(7, 3),
            (t.reason,),
        )
        for t in triggers
        if t.category is DisasterCategory.KATASTROPIK
    )


def _declaration_basis(
    category: DisasterCategory, basis: Basis, triggers: Sequence[Trigger]
) -> tuple[BasisItem, ...]:
    if category is DisasterCategory.PARSIAL_LOKAL:
        return _partial_basis(5, 4, _LOCAL_BASIS, basis)
    if category is DisasterCategory.PARSIAL_NASIONAL:
        return _partial_basis(6, 3, _NATIONAL_BASIS, basis)
    return _catastrophic_basis(triggers)


def _declaration_notes(disaster: Disaster, signals: Signals) -> list[str]:
    """Reminders of what the declaration still needs; the classification itself stands."""
    notes = []
    if disaster.category is DisasterCategory.PARSIAL_LOKAL:
        if not signals.basis.tickets:
            notes.append(
                "No ticket number is given: Pasal 5(3) asks the office to report the condition "
                "to the IT directorate through the incident application and obtain a ticket."
            )
        notes.append(
            "Pasal 5(5): the office communicates with the IT directorate before the head of "
            "office declares."
        )
        if len(disaster.affected_offices) > 1:
            notes.append(
                "A local disaster concerns one office (Pasal 5(1)(a) 'Kantor Bea dan Cukai "
                "tertentu'): the head of each affected office declares for their own office ("
                + ", ".join(disaster.affected_offices)
                + ")."
            )
    if disaster.category is not DisasterCategory.KATASTROPIK and not any(
        item.evidence for item in disaster.basis
    ):
        notes.append(
            f"None of the grounds of {disaster.basis_article} is supplied; the declaration must "
            "rest on at least one of them."
        )
    if disaster.coordination and signals.agency_outages:
        notes.append(
            "Pasal 13 huruf g: the agencies reported in the signals ("
            + ", ".join(_unique(a.agency for a in signals.agency_outages))
            + ") are among the integrated-system owners to coordinate with."
        )
    return notes


# --- Who may declare --------------------------------------------------------------------------


def check_declarer(
    role: Role | str, disaster: Disaster, *, consulted_it_directorate: bool = False
) -> Decision:
    """Whether ``role`` may declare ``disaster``; only the role its category names may.

    A local declaration also needs the office to have talked to the IT directorate first
    (Pasal 5(5)); the flag defaults to False so that forgetting it refuses rather than allows.
    """
    role = role_from(role, tuple(Role))
    needed = disaster.declarer_role
    article = disaster.declaration_article
    if role is Role.PEJABAT_DITUNJUK:
        return Decision(
            False,
            f"A designated official may write the laporan kaji cepat "
            f"({disaster.rapid_assessment.article}) but may not declare: {article} gives the "
            f"declaration to the {needed.label_en} ({needed.label_id}).",
        )
    if role is not needed:
        return Decision(
            False,
            f"{article}: a {disaster.category.label_en} is declared by the {needed.label_en} "
            f"({needed.label_id}), not by the {role.label_en}.",
        )
    if disaster.category is DisasterCategory.PARSIAL_LOKAL and not consulted_it_directorate:
        return Decision(
            False,
            "Pasal 5(5): the office must communicate with the IT directorate before a local "
            "partial disaster is declared; record that consultation, then declare.",
        )
    return Decision(
        True, f"{article}: the {role.label_en} declares the {disaster.category.label_en}."
    )


# --- Parsing plain data -----------------------------------------------------------------------

_SIGNAL_KEYS = (
    "offices_skp_down",
    "office_head_judgements",
    "services_down_nationally",
    "agency_outages",
    "dc_power",
    "server_zones",
    "national_network",
    "basis",
)
_BASIS_KEYS = (
    "tickets",
    "office_reports",
    "service_user_reports",
    "agency_reports",
    "it_directorate_analysis",
    "urgency",
    "document_count",
)


class _Problems:
    """Collects every problem with its location, so that the operator fixes them in one pass."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _got(value: object) -> str:
    return (
        f"got {value!r}" if not isinstance(value, dict | list) else f"got a {type(value).__name__}"
    )


def _mapping(
    value: object, where: str, keys: Sequence[str], problems: _Problems
) -> Mapping[str, Any] | None:
    """The value as a mapping; each unknown key becomes a problem, with the likely key named."""
    if not isinstance(value, Mapping):
        problems.add(where or "(top level)", f"expected a mapping, {_got(value)}")
        return None
    for key in value:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(keys)}"
            problems.add(_at(where, str(key)), f"unknown key; {hint}")
    return value


def _required(
    data: Mapping[str, Any],
    key: str,
    where: str,
    parse: Callable[[object, str, _Problems], _T | None],
    problems: _Problems,
) -> _T | None:
    """A key every item must have: a missing one is reported once, not also as a wrong type."""
    if key not in data:
        problems.add(_at(where, key), "missing")
        return None
    return parse(data[key], _at(where, key), problems)


def _items(value: object, where: str, problems: _Problems) -> list[tuple[str, Any]]:
    """The elements of a list, each with its location; anything else is a problem."""
    if not isinstance(value, list):
        problems.add(where, f"expected a list, {_got(value)}")
        return []
    return [(_at(where, i), item) for i, item in enumerate(value)]


def _text(value: object, where: str, problems: _Problems) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    problems.add(where, f"expected a non-empty text, {_got(value)}")
    return None


def _code(value: object, where: str, problems: _Problems) -> str | None:
    """Ticket numbers and zone names may be written bare (YAML reads 12345 as an int)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value, where, problems)


def _flag(value: object, where: str, problems: _Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(where, f"expected true or false, {_got(value)}")
    return None


def _number(value: object, where: str, problems: _Problems) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    problems.add(where, f"expected a number, {_got(value)}")
    return None


def _area(value: object, where: str, problems: _Problems) -> float | None:
    number = _number(value, where, problems)
    if number is not None and number <= 0:
        problems.add(where, f"expected an area above 0 m², got {value!r}")
        return None
    return number


def _count(value: object, where: str, problems: _Problems) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.add(where, f"expected a whole number of 0 or more, {_got(value)}")
    return None


def _criticality(value: object, where: str, problems: _Problems) -> Criticality | None:
    """An ADB level; 'sangat kritis' as the regulation spells it is accepted too."""
    if isinstance(value, str):
        normal = value.strip().lower().replace(" ", "_").replace("-", "_")
        if normal in {c.value for c in Criticality}:
            return Criticality(normal)
    levels = ", ".join(c.value for c in Criticality)
    problems.add(where, f"{value!r} is not an ADB criticality level; expected one of {levels}")
    return None


def _list_of(
    data: Mapping[str, Any],
    key: str,
    where: str,
    parse: Callable[[object, str, _Problems], _T | None],
    problems: _Problems,
) -> tuple[_T, ...]:
    if key not in data or data[key] is None:
        return ()
    parsed = [parse(item, at, problems) for at, item in _items(data[key], where, problems)]
    return tuple(p for p in parsed if p is not None)


def _optional(
    data: Mapping[str, Any],
    key: str,
    where: str,
    parse: Callable[[object, str, _Problems], _T | None],
    problems: _Problems,
    default: _T,
) -> _T:
    if key not in data:
        return default
    parsed = parse(data[key], where, problems)
    return default if parsed is None else parsed


def _service(value: object, where: str, problems: _Problems) -> ServiceOutage | None:
    keys = ("service_id", "criticality")
    data = _mapping(value, where, keys, problems)
    if data is None:
        return None
    service_id = _required(data, "service_id", where, _text, problems)
    level = _required(data, "criticality", where, _criticality, problems)
    if service_id is None or level is None:
        return None
    return ServiceOutage(service_id, level)


def _agency(value: object, where: str, problems: _Problems) -> AgencyOutage | None:
    keys = ("agency", "system", "critical_national_impact")
    data = _mapping(value, where, keys, problems)
    if data is None:
        return None
    agency = _required(data, "agency", where, _text, problems)
    system = _required(data, "system", where, _text, problems)
    impact = _required(data, "critical_national_impact", where, _flag, problems)
    if agency is None or system is None or impact is None:
        return None
    return AgencyOutage(agency, system, impact)


def _zone(value: object, where: str, problems: _Problems) -> ZoneReading | None:
    keys = ("zone", "area_m2", "celsius")
    data = _mapping(value, where, keys, problems)
    if data is None:
        return None
    zone = _required(data, "zone", where, _code, problems)
    area = _required(data, "area_m2", where, _area, problems)
    celsius = _required(data, "celsius", where, _number, problems)
    if zone is None or area is None or celsius is None:
        return None
    return ZoneReading(zone, area, celsius)


def _duplicate_zones(zones: Sequence[object], problems: _Problems) -> None:
    """A zone reported twice would be counted twice in the area weighting."""
    seen: set[object] = set()
    for i, item in enumerate(zones):
        name = item.get("zone") if isinstance(item, Mapping) else None
        if name is None:
            continue
        if str(name) in seen:
            problems.add(_at(_at("server_zones", i), "zone"), f"zone {name!r} is reported twice")
        seen.add(str(name))


def _basis(value: object, where: str, problems: _Problems) -> Basis | None:
    data = _mapping(value, where, _BASIS_KEYS, problems)
    if data is None:
        return None
    return Basis(
        tickets=_list_of(data, "tickets", _at(where, "tickets"), _code, problems),
        office_reports=_list_of(
            data, "office_reports", _at(where, "office_reports"), _text, problems
        ),
        service_user_reports=_list_of(
            data, "service_user_reports", _at(where, "service_user_reports"), _text, problems
        ),
        agency_reports=_list_of(
            data, "agency_reports", _at(where, "agency_reports"), _text, problems
        ),
        it_directorate_analysis=_optional_text(data, "it_directorate_analysis", where, problems),
        urgency=_optional_text(data, "urgency", where, problems),
        document_count=(
            None
            if data.get("document_count") is None
            else _count(data["document_count"], _at(where, "document_count"), problems)
        ),
    )


def _optional_text(
    data: Mapping[str, Any], key: str, where: str, problems: _Problems
) -> str | None:
    if data.get(key) is None:
        return None
    return _text(data[key], _at(where, key), problems)


def signals_from_mapping(data: Mapping[str, Any]) -> Signals:
    """Signals from plain data (parsed YAML or JSON); every problem is refused at once.

    Raises :class:`RunbookError` whose ``problems`` name each location and what was expected,
    e.g. ``server_zones[1].celsius: expected a number, got 'hot'``. Missing keys take the
    normal-condition defaults.
    """
    problems = _Problems()
    top = _mapping(data, "", _SIGNAL_KEYS, problems)
    if top is None:
        raise RunbookError("signals are invalid: 1 problem", problems=problems.items)
    signals = Signals(
        offices_skp_down=_list_of(top, "offices_skp_down", "offices_skp_down", _text, problems),
        office_head_judgements=_list_of(
            top, "office_head_judgements", "office_head_judgements", _text, problems
        ),
        services_down_nationally=_list_of(
            top, "services_down_nationally", "services_down_nationally", _service, problems
        ),
        agency_outages=_list_of(top, "agency_outages", "agency_outages", _agency, problems),
        dc_power=_optional(top, "dc_power", "dc_power", _flag, problems, True),
        server_zones=_list_of(top, "server_zones", "server_zones", _zone, problems),
        national_network=_optional(
            top, "national_network", "national_network", _flag, problems, True
        ),
        basis=_optional(top, "basis", "basis", _basis, problems, Basis()),
    )
    if isinstance(top.get("server_zones"), list):
        _duplicate_zones(top["server_zones"], problems)
    if problems.items:
        count = len(problems.items)
        raise RunbookError(
            f"signals are invalid: {count} problem{'s' if count > 1 else ''}",
            problems=problems.items,
        )
    return signals
