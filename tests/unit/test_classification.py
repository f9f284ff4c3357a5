"""Disaster classification against PER-19/BC/2023 Pasal 4-7 and 13, row by row and boundary by
boundary (see ../shared/REGULATION.md and the regulation text in seeds/001)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from drp.domain import classification
from drp.domain.adb import Criticality
from drp.domain.classification import (
    AgencyOutage,
    Basis,
    DisasterCategory,
    Role,
    ServiceOutage,
    Signals,
    ZoneReading,
    check_declarer,
    classify,
    hot_area_fraction,
    signals_from_mapping,
)
from drp.errors import RunbookError

pytestmark = pytest.mark.unit

LOKAL = DisasterCategory.PARSIAL_LOKAL
NASIONAL = DisasterCategory.PARSIAL_NASIONAL
KATASTROPIK = DisasterCategory.KATASTROPIK

COOL_ZONES = (ZoneReading("A", 400, 24.0), ZoneReading("B", 400, 25.0))
"""A DC server area that is reported and cool, so that heat notes stay out of the way."""


def signals(**changes: object) -> Signals:
    """Normal signals with cool zones reported, changed by ``changes``."""
    base: dict[str, object] = {"server_zones": COOL_ZONES}
    base.update(changes)
    return Signals(**base)  # type: ignore[arg-type]


def disaster_of(s: Signals) -> classification.Disaster:
    disaster = classify(s).disaster
    assert disaster is not None, classify(s).notes
    return disaster


def articles(s: Signals) -> list[str]:
    return [t.article for t in disaster_of(s).triggers]


def zones(*readings: tuple[float, float]) -> tuple[ZoneReading, ...]:
    """Zones named A, B, C, ... from (area_m2, celsius) pairs."""
    return tuple(ZoneReading(chr(ord("A") + i), a, c) for i, (a, c) in enumerate(readings))


# --- Normal condition -------------------------------------------------------------------------


def test_no_disaster_in_the_normal_condition() -> None:
    assessment = classify(signals())
    assert assessment.disaster is None
    assert any("no disaster" in note for note in assessment.notes)


def test_default_signals_describe_a_normal_condition_with_a_note_that_heat_is_unknown() -> None:
    assessment = classify(Signals())
    assert assessment.disaster is None
    assert any("No server-zone temperatures" in n for n in assessment.notes)


# --- Local partial disaster (Pasal 5) ---------------------------------------------------------


def test_local_when_skp_does_not_work_at_one_office() -> None:
    disaster = disaster_of(signals(offices_skp_down=("KPPBC-CILACAP",)))
    assert disaster.category is LOKAL
    assert [t.article for t in disaster.triggers] == ["Pasal 5(1)(a)"]
    assert "KPPBC-CILACAP" in disaster.triggers[0].reason
    assert disaster.affected_offices == ("KPPBC-CILACAP",)


def test_local_when_the_office_head_judges_another_condition_stops_skp() -> None:
    disaster = disaster_of(signals(office_head_judgements=("KPU-PRIOK",)))
    assert disaster.category is LOKAL
    assert [t.article for t in disaster.triggers] == ["Pasal 5(1)(b)"]


def test_local_is_declared_by_the_office_head_and_notified_to_service_users() -> None:
    disaster = disaster_of(signals(offices_skp_down=("KPPBC-CILACAP",)))
    assert disaster.declarer_role is Role.KEPALA_KANTOR
    assert disaster.declaration_article == "Pasal 5(2)"
    assert disaster.notification.sender is Role.KEPALA_KANTOR
    assert disaster.notification.recipients.id == "pengguna_jasa"
    assert disaster.notification.article == "Pasal 5(9)"
    assert disaster.notification.template == "Lampiran C"
    assert disaster.rapid_assessment.authors == (Role.KEPALA_KANTOR, Role.PEJABAT_DITUNJUK)
    assert disaster.rapid_assessment.article == "Pasal 5(6)"
    assert disaster.handled_by.id == "kantor_bea_cukai"


def test_local_has_no_pasal_13_coordination() -> None:
    assert disaster_of(signals(offices_skp_down=("KPPBC-CILACAP",))).coordination == ()


def test_local_stages_start_with_the_abnormal_condition_procedure() -> None:
    disaster = disaster_of(signals(offices_skp_down=("KPPBC-CILACAP",)))
    assert [s.id for s in disaster.stages] == [
        "prosedur_kondisi_tidak_normal",
        "drp",
        "pelayanan_manual",
        "dokumen_cetak",
    ]
    assert [s.article for s in disaster.stages] == [
        "Pasal 5(11)(a)",
        "Pasal 5(11)(b)",
        "Pasal 5(11)(c)",
        "Pasal 5(11)(d)",
    ]


def test_local_basis_lists_every_ground_of_pasal_5_4_with_the_evidence_supplied() -> None:
    basis = Basis(tickets=("CC-1",), urgency="closing time", document_count=37)
    disaster = disaster_of(signals(offices_skp_down=("K",), basis=basis))
    assert disaster.basis_article == "Pasal 5(4)"
    by_id = {item.id: item for item in disaster.basis}
    assert [item.article for item in disaster.basis] == [f"Pasal 5(4)({c})" for c in "abcde"]
    assert by_id["tiket"].evidence == ("CC-1",)
    assert by_id["informasi_pengguna_jasa"].evidence == ()
    assert by_id["urgensi_jumlah_dokumen"].evidence == ("closing time", "37 documents waiting")


def test_local_without_a_ticket_notes_pasal_5_3() -> None:
    notes = classify(signals(offices_skp_down=("K",))).notes
    assert any("Pasal 5(3)" in n for n in notes)
    assert any("Pasal 5(4)" in n and "at least one" in n for n in notes)


def test_local_with_a_ticket_has_no_missing_ticket_note() -> None:
    notes = classify(signals(offices_skp_down=("K",), basis=Basis(tickets=("CC-1",)))).notes
    assert not any("Pasal 5(3)" in n for n in notes)
    assert not any("at least one" in n for n in notes)


def test_local_at_several_offices_notes_that_each_head_declares_for_their_own() -> None:
    s = signals(offices_skp_down=("K1", "K2"), office_head_judgements=("K2", "K3"))
    assessment = classify(s)
    assert assessment.disaster is not None
    assert assessment.disaster.affected_offices == ("K1", "K2", "K3")
    assert [t.article for t in assessment.disaster.triggers] == ["Pasal 5(1)(a)", "Pasal 5(1)(b)"]
    assert any("each affected office" in n and "K1, K2, K3" in n for n in assessment.notes)


# --- National partial disaster (Pasal 6) ------------------------------------------------------


def test_national_when_a_sangat_kritis_service_is_down_nationally() -> None:
    s = signals(services_down_nationally=(ServiceOutage("ceisa-impor", Criticality.SANGAT_KRITIS),))
    disaster = disaster_of(s)
    assert disaster.category is NASIONAL
    assert [t.article for t in disaster.triggers] == ["Pasal 6(1)(a)"]
    assert "ceisa-impor" in disaster.triggers[0].reason


@pytest.mark.parametrize("level", [Criticality.KRITIS, Criticality.SEDANG, Criticality.RENDAH])
def test_a_service_below_sangat_kritis_down_nationally_is_no_disaster_and_the_note_says_why(
    level: Criticality,
) -> None:
    assessment = classify(signals(services_down_nationally=(ServiceOutage("portal", level),)))
    assert assessment.disaster is None
    [note] = [n for n in assessment.notes if "portal" in n]
    assert "Pasal 6(1)(a)" in note
    assert "sangat kritis" in note
    assert level.value in note


def test_national_when_an_integrated_agency_outage_has_critical_national_impact() -> None:
    s = signals(agency_outages=(AgencyOutage("LNSW", "INSW", critical_national_impact=True),))
    disaster = disaster_of(s)
    assert disaster.category is NASIONAL
    assert [t.article for t in disaster.triggers] == ["Pasal 6(1)(b)"]
    assert "INSW (LNSW)" in disaster.triggers[0].reason


def test_an_agency_outage_without_critical_national_impact_is_no_disaster() -> None:
    s = signals(agency_outages=(AgencyOutage("LNSW", "INSW", critical_national_impact=False),))
    assessment = classify(s)
    assert assessment.disaster is None
    assert any("Pasal 6(1)(b)" in n and "INSW" in n for n in assessment.notes)


def test_national_is_declared_by_the_director_who_notifies_the_office_heads() -> None:
    s = signals(services_down_nationally=(ServiceOutage("ceisa", Criticality.SANGAT_KRITIS),))
    disaster = disaster_of(s)
    assert disaster.declarer_role is Role.DIREKTUR
    assert disaster.declaration_article == "Pasal 6(2)"
    assert disaster.notification.sender is Role.DIREKTUR
    assert disaster.notification.recipients.id == "kepala_kantor_bea_cukai"
    assert disaster.notification.article == "Pasal 6(7)"
    assert disaster.rapid_assessment.authors == (Role.DIREKTUR, Role.PEJABAT_DITUNJUK)
    assert disaster.rapid_assessment.article == "Pasal 6(4)"
    assert disaster.handled_by.id == "direktorat_teknologi_informasi"
    assert [s.article for s in disaster.stages] == [f"Pasal 6(9)({c})" for c in "abcd"]
    assert disaster.stages[0].id == "prosedur_kondisi_tidak_normal"


def test_national_basis_is_pasal_6_3_including_the_it_directorate_analysis() -> None:
    basis = Basis(it_directorate_analysis="database failure at the DC", urgency="ignored here")
    s = signals(
        services_down_nationally=(ServiceOutage("ceisa", Criticality.SANGAT_KRITIS),),
        basis=basis,
    )
    disaster = disaster_of(s)
    assert disaster.basis_article == "Pasal 6(3)"
    assert [i.id for i in disaster.basis] == [
        "tiket",
        "informasi_kantor",
        "informasi_instansi_teknis",
        "informasi_pengguna_jasa",
        "analisis_direktorat_ti",
    ]
    assert disaster.basis[-1].evidence == ("database failure at the DC",)
    assert disaster.basis[-1].article == "Pasal 6(3)(e)"


def test_national_coordinates_with_the_six_directorates_and_integrated_agencies() -> None:
    s = signals(services_down_nationally=(ServiceOutage("ceisa", Criticality.SANGAT_KRITIS),))
    coordination = disaster_of(s).coordination
    assert [p.article for p in coordination] == [f"Pasal 13 huruf {c}" for c in "abcdefg"]
    assert coordination[-1].id == "instansi_teknis_sistem_terintegrasi"
    assert all(p.label_id and p.label_en for p in coordination)


def test_national_caused_by_an_agency_names_that_agency_for_coordination() -> None:
    s = signals(agency_outages=(AgencyOutage("LNSW", "INSW", critical_national_impact=True),))
    assert any("Pasal 13 huruf g" in n and "LNSW" in n for n in classify(s).notes)


# --- Catastrophic disaster (Pasal 7) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "article"),
    [
        ({"dc_power": False}, "Pasal 7(1)(a)"),
        ({"server_zones": zones((600, 31.0), (400, 25.0))}, "Pasal 7(1)(b)"),
        ({"national_network": False}, "Pasal 7(1)(c)"),
    ],
    ids=["no-power", "heat", "network"],
)
def test_catastrophic_for_each_condition_of_pasal_7_1(changes: dict, article: str) -> None:
    disaster = disaster_of(signals(**changes))
    assert disaster.category is KATASTROPIK
    assert [t.article for t in disaster.triggers] == [article]
    assert [b.evidence for b in disaster.basis] == [(disaster.triggers[0].reason,)]
    assert disaster.basis_article == "Pasal 7(3)"


def test_catastrophic_stages_start_with_the_drp() -> None:
    disaster = disaster_of(signals(dc_power=False))
    assert [s.id for s in disaster.stages] == ["drp", "pelayanan_manual", "dokumen_cetak"]
    assert [s.article for s in disaster.stages] == [f"Pasal 7(9)({c})" for c in "abc"]


def test_catastrophic_is_declared_by_the_director_with_pasal_13_coordination() -> None:
    disaster = disaster_of(signals(national_network=False))
    assert disaster.declarer_role is Role.DIREKTUR
    assert disaster.declaration_article == "Pasal 7(2)"
    assert disaster.notification.recipients.id == "kepala_kantor_bea_cukai"
    assert disaster.notification.article == "Pasal 7(7)"
    assert disaster.rapid_assessment.article == "Pasal 7(4)"
    assert len(disaster.coordination) == 7


def test_every_pasal_7_condition_is_recorded_when_all_hold() -> None:
    s = signals(dc_power=False, national_network=False, server_zones=zones((1, 40.0)))
    assert articles(s) == ["Pasal 7(1)(a)", "Pasal 7(1)(b)", "Pasal 7(1)(c)"]
    assert [b.id for b in disaster_of(s).basis] == [
        "kondisi_7_1_a",
        "kondisi_7_1_b",
        "kondisi_7_1_c",
    ]


# --- Heat boundaries (Pasal 7(1)(b)) ----------------------------------------------------------


def test_catastrophic_when_exactly_half_the_server_area_is_above_30c() -> None:
    s = signals(server_zones=zones((500, 31.0), (500, 22.0)))
    assert disaster_of(s).category is KATASTROPIK
    assert "50% of the DC server area (500 of 1000 m²)" in disaster_of(s).triggers[0].reason


def test_not_catastrophic_when_just_under_half_the_server_area_is_above_30c() -> None:
    assessment = classify(signals(server_zones=zones((499, 31.0), (501, 22.0))))
    assert assessment.disaster is None
    assert any("49.9% of the DC server area" in n and "50% or more" in n for n in assessment.notes)


def test_a_share_just_under_half_is_never_shown_rounded_up_to_50_percent() -> None:
    notes = classify(signals(server_zones=zones((49999, 31.0), (50001, 22.0)))).notes
    assert any("49.99% of the DC server area" in n for n in notes)


def test_exactly_30c_is_not_above_30c() -> None:
    assessment = classify(signals(server_zones=zones((500, 30.0), (500, 30.0))))
    assert assessment.disaster is None
    assert any("exactly 30 °C" in n and "A, B" in n for n in assessment.notes)


def test_catastrophic_at_30_point_1c_over_the_whole_area() -> None:
    s = signals(server_zones=zones((500, 30.1), (500, 30.1)))
    assert articles(s) == ["Pasal 7(1)(b)"]


def test_heat_is_weighted_by_area_not_by_number_of_zones() -> None:
    one_large_hot_zone = zones((600, 35.0), (200, 20.0), (200, 20.0))
    two_small_hot_zones = zones((100, 35.0), (100, 35.0), (800, 20.0))
    assert disaster_of(signals(server_zones=one_large_hot_zone)).category is KATASTROPIK
    assert classify(signals(server_zones=two_small_hot_zones)).disaster is None


def test_half_of_decimal_areas_counts_exactly_despite_binary_floats() -> None:
    # In binary floating point 0.1 + 0.2 > 0.3, so a naive sum puts 0.3 hot m² under 50%.
    s = signals(server_zones=zones((0.3, 31.0), (0.1, 20.0), (0.2, 20.0)))
    assert disaster_of(s).category is KATASTROPIK


def test_hot_area_fraction_weights_zones_by_area() -> None:
    assert hot_area_fraction(zones((300, 34.2), (200, 31.0), (300, 30.0))) == 0.625


def test_hot_area_fraction_takes_another_threshold() -> None:
    assert hot_area_fraction(zones((300, 26.0), (100, 24.0)), threshold_c=25.0) == 0.75


def test_hot_area_fraction_is_none_without_readings_rather_than_zero() -> None:
    assert hot_area_fraction(()) is None


def test_no_zones_reported_is_no_heat_trigger_and_is_noted() -> None:
    assessment = classify(Signals(dc_power=False))
    assert articles(Signals(dc_power=False)) == ["Pasal 7(1)(a)"]
    assert any("No server-zone temperatures" in n for n in assessment.notes)


def test_heat_trigger_names_the_hot_zones_and_the_share() -> None:
    s = signals(server_zones=zones((300, 34.2), (200, 31.0), (300, 30.0)))
    [trigger] = disaster_of(s).triggers
    assert trigger.reason == (
        "62.5% of the DC server area (500 of 800 m²) is above 30 °C (zones A, B)"
    )


@pytest.mark.parametrize("area", [0, -10])
def test_a_zone_reading_without_positive_area_is_refused(area: float) -> None:
    with pytest.raises(RunbookError, match="area_m2"):
        ZoneReading("A", area, 25.0)


def test_a_zone_reading_with_an_infinite_temperature_is_refused() -> None:
    with pytest.raises(RunbookError, match="celsius"):
        ZoneReading("A", 10, math.inf)


# --- Precedence -------------------------------------------------------------------------------

SANGAT_KRITIS_DOWN = (ServiceOutage("ceisa", Criticality.SANGAT_KRITIS),)


@pytest.mark.parametrize(
    ("changes", "category"),
    [
        ({"offices_skp_down": ("K",), "services_down_nationally": SANGAT_KRITIS_DOWN}, NASIONAL),
        ({"offices_skp_down": ("K",), "dc_power": False}, KATASTROPIK),
        ({"services_down_nationally": SANGAT_KRITIS_DOWN, "national_network": False}, KATASTROPIK),
    ],
    ids=["national-over-local", "catastrophic-over-local", "catastrophic-over-national"],
)
def test_the_most_severe_category_wins(changes: dict, category: DisasterCategory) -> None:
    assert disaster_of(signals(**changes)).category is category


def test_all_triggers_are_recorded_when_every_category_holds() -> None:
    s = signals(
        offices_skp_down=("K",),
        services_down_nationally=SANGAT_KRITIS_DOWN,
        dc_power=False,
    )
    disaster = disaster_of(s)
    assert disaster.category is KATASTROPIK
    assert [(t.article, t.category) for t in disaster.triggers] == [
        ("Pasal 5(1)(a)", LOKAL),
        ("Pasal 6(1)(a)", NASIONAL),
        ("Pasal 7(1)(a)", KATASTROPIK),
    ]
    assert disaster.declarer_role is Role.DIREKTUR
    assert [b.id for b in disaster.basis] == ["kondisi_7_1_a"]
    assert disaster.affected_offices == ("K",)
    assert any("Pasal 5(1)(a), Pasal 6(1)(a)" in n for n in classify(s).notes)


def test_severity_orders_the_categories() -> None:
    assert LOKAL.severity < NASIONAL.severity < KATASTROPIK.severity


# --- Who may declare (Pasal 5(2), 5(5), 6(2), 7(2)) -------------------------------------------

LOCAL = signals(offices_skp_down=("K",))
NATIONAL = signals(services_down_nationally=SANGAT_KRITIS_DOWN)
CATASTROPHIC = signals(dc_power=False)


def test_office_head_may_declare_a_local_disaster_after_consulting_the_it_directorate() -> None:
    decision = check_declarer(Role.KEPALA_KANTOR, disaster_of(LOCAL), consulted_it_directorate=True)
    assert decision.allowed
    assert "Pasal 5(2)" in decision.reason


def test_office_head_may_not_declare_a_local_disaster_without_consulting_the_it_directorate() -> (
    None
):
    decision = check_declarer(Role.KEPALA_KANTOR, disaster_of(LOCAL))
    assert not decision.allowed
    assert "Pasal 5(5)" in decision.reason


def test_the_director_may_not_declare_a_local_disaster() -> None:
    decision = check_declarer(Role.DIREKTUR, disaster_of(LOCAL), consulted_it_directorate=True)
    assert not decision.allowed
    assert "Pasal 5(2)" in decision.reason


@pytest.mark.parametrize("s", [NATIONAL, CATASTROPHIC], ids=["national", "catastrophic"])
def test_the_director_declares_national_and_catastrophic_disasters(s: Signals) -> None:
    assert check_declarer(Role.DIREKTUR, disaster_of(s)).allowed


@pytest.mark.parametrize("s", [NATIONAL, CATASTROPHIC], ids=["national", "catastrophic"])
def test_an_office_head_may_not_declare_national_or_catastrophic_disasters(s: Signals) -> None:
    decision = check_declarer(Role.KEPALA_KANTOR, disaster_of(s), consulted_it_directorate=True)
    assert not decision.allowed
    assert "IT Director" in decision.reason


@pytest.mark.parametrize("s", [LOCAL, NATIONAL, CATASTROPHIC], ids=["local", "nat", "cat"])
def test_a_designated_official_writes_the_rapid_assessment_but_never_declares(s: Signals) -> None:
    disaster = disaster_of(s)
    decision = check_declarer(Role.PEJABAT_DITUNJUK, disaster, consulted_it_directorate=True)
    assert not decision.allowed
    assert "laporan kaji cepat" in decision.reason
    assert Role.PEJABAT_DITUNJUK in disaster.rapid_assessment.authors


def test_check_declarer_accepts_the_role_as_its_plain_id() -> None:
    assert check_declarer("direktur", disaster_of(NATIONAL)).allowed  # type: ignore[arg-type]


# --- Labels -----------------------------------------------------------------------------------


def test_roles_and_categories_carry_indonesian_and_english_labels() -> None:
    for item in (*Role, *DisasterCategory):
        assert item.label_id and item.label_en and item.label_id != item.label_en


# --- Parsing plain data -----------------------------------------------------------------------

FULL = {
    "offices_skp_down": ["K1"],
    "office_head_judgements": ["K2"],
    "services_down_nationally": [
        {"service_id": "ceisa-impor", "criticality": "sangat_kritis"},
        {"service_id": "portal", "criticality": "kritis"},
    ],
    "agency_outages": [{"agency": "LNSW", "system": "INSW", "critical_national_impact": True}],
    "dc_power": False,
    "server_zones": [{"zone": "A", "area_m2": 300, "celsius": 34.2}],
    "national_network": True,
    "basis": {
        "tickets": ["CC-1", 12345],
        "office_reports": ["r1"],
        "service_user_reports": ["u1"],
        "agency_reports": ["a1"],
        "it_directorate_analysis": "db failure",
        "urgency": "closing time",
        "document_count": 37,
    },
}


def test_a_full_mapping_parses_into_signals() -> None:
    assert signals_from_mapping(FULL) == Signals(
        offices_skp_down=("K1",),
        office_head_judgements=("K2",),
        services_down_nationally=(
            ServiceOutage("ceisa-impor", Criticality.SANGAT_KRITIS),
            ServiceOutage("portal", Criticality.KRITIS),
        ),
        agency_outages=(AgencyOutage("LNSW", "INSW", True),),
        dc_power=False,
        server_zones=(ZoneReading("A", 300.0, 34.2),),
        national_network=True,
        basis=Basis(
            tickets=("CC-1", "12345"),
            office_reports=("r1",),
            service_user_reports=("u1",),
            agency_reports=("a1",),
            it_directorate_analysis="db failure",
            urgency="closing time",
            document_count=37,
        ),
    )


def test_an_empty_mapping_is_the_normal_condition() -> None:
    assert signals_from_mapping({}) == Signals()


def test_criticality_may_be_spelled_as_the_regulation_does() -> None:
    s = signals_from_mapping(
        {"services_down_nationally": [{"service_id": "x", "criticality": "Sangat Kritis"}]}
    )
    assert s.services_down_nationally[0].criticality is Criticality.SANGAT_KRITIS


def problems_of(data: object) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        signals_from_mapping(data)  # type: ignore[arg-type]
    return caught.value.problems


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    problems = problems_of(
        {
            "offices_skp_dwn": ["K1"],
            "services_down_nationally": [{"service_id": "x", "criticality": "high"}],
            "dc_power": "no",
            "server_zones": [
                {"zone": "A", "area_m2": 100, "celsius": 31},
                {"zone": "B", "area_m2": -5, "celsius": "hot"},
            ],
            "basis": {"tickets": [True], "document_count": -1, "mood": "grim"},
        }
    )
    assert problems == [
        "offices_skp_dwn: unknown key; did you mean 'offices_skp_down'?",
        "services_down_nationally[0].criticality: 'high' is not an ADB criticality level; "
        "expected one of sangat_kritis, kritis, sedang, rendah",
        "dc_power: expected true or false, got 'no'",
        "server_zones[1].area_m2: expected an area above 0 m², got -5",
        "server_zones[1].celsius: expected a number, got 'hot'",
        "basis.mood: unknown key; expected one of tickets, office_reports, "
        "service_user_reports, agency_reports, it_directorate_analysis, urgency, document_count",
        "basis.tickets[0]: expected a non-empty text, got True",
        "basis.document_count: expected a whole number of 0 or more, got -1",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"server_zones": [{"zone": "A", "area_m2": 1, "celsius": True}]},
         "server_zones[0].celsius: expected a number, got True"),
        ({"server_zones": [{"zone": "A", "area_m2": 1, "celsius": float("nan")}]},
         "server_zones[0].celsius: expected a number, got nan"),
        ({"server_zones": [{"zone": "A", "area_m2": 0, "celsius": 20}]},
         "server_zones[0].area_m2: expected an area above 0 m², got 0"),
        ({"server_zones": [{"zone": "A", "celsius": 20}]}, "server_zones[0].area_m2: missing"),
        ({"server_zones": {"zone": "A"}}, "server_zones: expected a list, got a dict"),
        ({"server_zones": ["A"]}, "server_zones[0]: expected a mapping, got 'A'"),
        ({"agency_outages": [{"agency": "LNSW", "system": "INSW"}]},
         "agency_outages[0].critical_national_impact: missing"),
        ({"offices_skp_down": "K1"}, "offices_skp_down: expected a list, got 'K1'"),
        ({"offices_skp_down": [""]}, "offices_skp_down[0]: expected a non-empty text, got ''"),
        ({"national_network": 0}, "national_network: expected true or false, got 0"),
        ({"basis": ["CC-1"]}, "basis: expected a mapping, got a list"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_its_location_and_a_hint(data: dict, expected: str) -> None:
    assert problems_of(data) == [expected]


def test_a_zone_reported_twice_is_refused_because_it_would_count_twice() -> None:
    zone = {"zone": "A", "area_m2": 1, "celsius": 20}
    assert problems_of({"server_zones": [zone, zone]}) == [
        "server_zones[1].zone: zone 'A' is reported twice"
    ]


def test_signals_that_are_not_a_mapping_are_refused() -> None:
    assert problems_of(["dc_power"]) == ["(top level): expected a mapping, got a list"]


def test_the_error_message_counts_the_problems() -> None:
    with pytest.raises(RunbookError, match="2 problems"):
        signals_from_mapping({"dc_power": 1, "national_network": 1})


# --- Layering ---------------------------------------------------------------------------------

FORBIDDEN = {"prefect", "psycopg", "paramiko", "boto3", "slack_sdk", "openpyxl", "ansible_runner"}


def test_classification_imports_no_adapter_library() -> None:
    tree = ast.parse(Path(classification.__file__).read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert imported & FORBIDDEN == set()
    assert "drp" in imported  # the walk sees the module's own imports, so the check is live
