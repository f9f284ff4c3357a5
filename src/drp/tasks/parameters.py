"""The types of the incident flows' parameters that are choices, for Prefect's validation.

A flow run's parameters are validated by pydantic before the flow starts (``validate_parameters``)
and the deployment's form in the Prefect UI is drawn from the same schema: a ``Literal`` is a
drop-down of its values. The server checks a deployment run's parameters against that schema
too (``enforce_parameter_schema``), before any flow code runs — so the English aliases are in the
``Literal`` beside the regulation's names, after them, and the validator turns an alias into the
regulation's name (:func:`drp.domain.classification.category_from`) so that the flow, its run
name and its records only ever see the regulation's. Anything else is refused before anything
runs, with the valid choices in the message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

from drp.domain.classification import category_from, role_from

ModeName = Literal["drill", "real"]
"""Whether an incident flow is a rehearsal or the real thing: no default where a person starts
it (the UI's form asks), since a drill writes drill documents and a real run real ones."""


def _category(value: object) -> object:
    return value if value is None else category_from(str(value)).value


def _role(value: object) -> object:
    return value if value is None else role_from(str(value)).value


CategoryName = Annotated[
    Literal[
        "parsial_lokal", "parsial_nasional", "katastropik", "local", "national", "catastrophic"
    ],
    BeforeValidator(_category),
]
"""A disaster category (Pasal 4-7); ``local``, ``national``, ``catastrophic`` are accepted."""

RoleName = Annotated[
    Literal["direktur", "kepala_kantor", "director", "office_head"], BeforeValidator(_role)
]
"""The role of who declares or approves; ``director``, ``office_head`` are accepted."""

ScenarioName = Literal["dc-db-crash", "dc-power-loss", "dc-heat", "national-network-loss"]
"""A drill scenario (:data:`drp.domain.drill.SCENARIOS`), a drop-down in the drill's form."""
