"""One set of names for categories and roles: the regulation's ids, the English accepted as
aliases, anything else refused with the valid choices (PER-19/BC/2023 Pasal 4-7)."""

from __future__ import annotations

import typing

import pytest

from drp.domain.classification import (
    CATEGORY_ALIASES,
    DECLARING_ROLES,
    ROLE_ALIASES,
    DisasterCategory,
    Role,
    UnknownChoice,
    category_from,
    role_from,
)
from drp.errors import DrpError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("parsial_lokal", DisasterCategory.PARSIAL_LOKAL),
        ("parsial_nasional", DisasterCategory.PARSIAL_NASIONAL),
        ("katastropik", DisasterCategory.KATASTROPIK),
        ("local", DisasterCategory.PARSIAL_LOKAL),
        ("national", DisasterCategory.PARSIAL_NASIONAL),
        ("catastrophic", DisasterCategory.KATASTROPIK),
        (" Parsial-Nasional ", DisasterCategory.PARSIAL_NASIONAL),
        ("CATASTROPHIC", DisasterCategory.KATASTROPIK),
        (DisasterCategory.KATASTROPIK, DisasterCategory.KATASTROPIK),
    ],
)
def test_a_category_is_named_by_the_regulation_or_in_english(
    given: str, expected: DisasterCategory
) -> None:
    assert category_from(given) is expected


def test_an_unknown_category_is_refused_with_every_choice_and_alias() -> None:
    with pytest.raises(UnknownChoice) as caught:
        category_from("partial")
    text = str(caught.value)
    assert text.startswith("category 'partial' is not one of ")
    for name in [c.value for c in DisasterCategory] + list(CATEGORY_ALIASES):
        assert name in text
    # A DrpError for the commands, a ValueError for parameter validation (pydantic, Prefect).
    assert isinstance(caught.value, DrpError) and isinstance(caught.value, ValueError)
    assert caught.value.choices == ("parsial_lokal", "parsial_nasional", "katastropik")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("direktur", Role.DIREKTUR),
        ("kepala_kantor", Role.KEPALA_KANTOR),
        ("director", Role.DIREKTUR),
        ("office_head", Role.KEPALA_KANTOR),
        ("Kepala-Kantor", Role.KEPALA_KANTOR),
    ],
)
def test_a_declaring_role_is_named_by_the_regulation_or_in_english(
    given: str, expected: Role
) -> None:
    assert role_from(given) is expected


def test_a_designated_official_is_no_choice_for_declaring_or_approving() -> None:
    assert Role.PEJABAT_DITUNJUK not in DECLARING_ROLES
    with pytest.raises(UnknownChoice, match=r"not one of direktur, kepala_kantor"):
        role_from("pejabat_ditunjuk")
    # ... though the role exists, for the rules that explain why it may not declare.
    assert role_from("designated_official", tuple(Role)) is Role.PEJABAT_DITUNJUK


def test_an_unknown_role_is_refused_with_the_choices_and_their_aliases() -> None:
    with pytest.raises(UnknownChoice) as caught:
        role_from("boss")
    assert str(caught.value) == (
        "role 'boss' is not one of direktur, kepala_kantor (or in English: director, office_head)"
    )


def test_the_flow_parameter_choices_are_the_domain_names() -> None:
    from drp.tasks import parameters

    def literal_values(alias: object) -> tuple[str, ...]:
        (literal, *_) = typing.get_args(alias)  # Annotated[Literal[...], validator]
        return typing.get_args(literal)

    # The regulation's names first, then the English (the server checks a deployment run's
    # parameters against this schema before the flow can turn an alias into the name).
    assert literal_values(parameters.CategoryName) == (
        *(c.value for c in DisasterCategory),
        *CATEGORY_ALIASES,
    )
    assert literal_values(parameters.RoleName) == (
        *(r.value for r in DECLARING_ROLES),
        *(a for a, r in ROLE_ALIASES.items() if r in DECLARING_ROLES),
    )
    assert typing.get_args(parameters.ModeName) == ("drill", "real")


def test_the_drill_scenarios_to_choose_from_are_the_domain_scenarios() -> None:
    from drp.domain.drill import SCENARIOS
    from drp.tasks import parameters

    assert typing.get_args(parameters.ScenarioName) == tuple(SCENARIOS)


def test_the_failover_flow_takes_english_names_and_refuses_others_before_it_runs() -> None:
    from prefect.exceptions import ParameterTypeError

    from drp.flows import load

    flow = load("failover").failover
    given = {"mode": "real", "category": "national", "declarer_role": "Director"}
    validated = flow.validate_parameters(given)
    assert validated["category"] == "parsial_nasional"
    assert validated["declarer_role"] == "direktur"
    with pytest.raises(ParameterTypeError) as caught:
        flow.validate_parameters({"category": "partial", "declarer_role": "boss"})
    text = str(caught.value)
    assert "mode: Field required" in text
    assert "category 'partial' is not one of parsial_lokal, parsial_nasional, katastropik" in text
    assert "role 'boss' is not one of direktur, kepala_kantor" in text
