"""The runbook: the DRP (Disaster Recovery Plan, Pasal 3(3)(c)) as data, and the rules it keeps.

A runbook lists the services to bring back at the DRC, each with its ADB impact scores (Pasal
3(3)(a)), its RTO, RPO and MTDP, its priority group, the services it depends on, and the steps
(Ansible playbooks) that recover it. A runbook that breaks a rule must fail before anything
runs, so :func:`validate` reports *every* problem at once, each with the path of the value in
the file, a sentence that says what is wrong and a hint that says what to do.

Validation has two layers. The *shape* (types, required fields) is checked by the pydantic
models; a value of the wrong type leaves nothing to reason about, so when the shape is wrong the
rules below are not checked. Unknown keys are reported without blocking the rules, because a
typo in a key is the most common mistake and it should not hide the others. The *rules* (limits
of the regulation, dependencies, playbooks, inventory groups, fencing) are pure functions of the
parsed runbook and of what the caller found outside: the playbook names and inventory groups.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

from drp.domain.adb import Criticality, Impact, criticality
from drp.domain.backup import BackupPolicy
from drp.domain.chatops import ChatChannels, Roster
from drp.domain.compliance import DrillPolicy
from drp.domain.evidence_archive import EvidencePolicy
from drp.domain.graph import DEFAULT_MAX_PARALLEL, MAX_PARALLEL_LIMIT, Node, Policy, simulate

RTO_LIMIT_MINUTES = 60
"""Pasal 3(1)(b): the RTO stays under one hour."""

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
"""Ids become Prefect artifact keys and evidence names: lowercase letters, digits and dashes."""

Loc = tuple[str | int, ...]
"""Where a value sits in the runbook: ``("services", 2, "rto_minutes")``."""

Action = Literal["fence", "promote", "switch_traffic", "start", "verify", "check", "custom"]
Environment = Literal["lab", "test", "production"]


# --------------------------------------------------------------------------------------------
# Problems


def format_path(loc: Loc) -> str:
    """``("services", 2, "rto_minutes")`` -> ``services[2].rto_minutes`` (the operator's view)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a runbook: where (path, and line when known), what, and what to do."""

    path: str
    message: str
    hint: str = ""
    line: int | None = None
    loc: Loc = ()

    @classmethod
    def at(cls, loc: Loc, message: str, hint: str = "", line: int | None = None) -> Problem:
        """A problem at ``loc``; the path is derived from it so the two never disagree."""
        return cls(path=format_path(loc), message=message, hint=hint, line=line, loc=loc)

    def __str__(self) -> str:
        text = f"{self.path or '(runbook)'}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and for the evidence ledger."""
        return {"path": self.path, "line": self.line, "message": self.message, "hint": self.hint}


def document_order(data: Any) -> dict[Loc, int]:
    """Position of every value in pre-order: the order in which the file shows them."""
    order: dict[Loc, int] = {}

    def visit(value: Any, loc: Loc) -> None:
        order.setdefault(loc, len(order))
        if isinstance(value, Mapping):
            for key, child in value.items():
                visit(child, (*loc, key))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                visit(child, (*loc, index))

    visit(data, ())
    return order


def _nearest(loc: Loc, table: Mapping[Loc, int]) -> int | None:
    """The entry of the longest prefix of ``loc`` in ``table`` (a missing key sorts at its
    parent, and takes its parent's line)."""
    for end in range(len(loc), -1, -1):
        found = table.get(loc[:end])
        if found is not None:
            return found
    return None


def sort_problems(
    problems: Iterable[Problem], data: Any, lines: Mapping[Loc, int] | None = None
) -> tuple[Problem, ...]:
    """Problems in the order of the file, each given its line when ``lines`` knows it."""
    order = document_order(data)
    placed = [
        replace(p, line=p.line or (_nearest(p.loc, lines) if lines else None)) for p in problems
    ]
    return tuple(sorted(placed, key=lambda p: _nearest(p.loc, order) or 0))


# --------------------------------------------------------------------------------------------
# The model (the shape)


class _Model(BaseModel):
    """Frozen, strict about types; unknown keys are reported by :func:`validate`, not here."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ImpactScores(_Model):
    """ADB impact scores of seed 002, each 1 (negligible) to 5 (severe)."""

    financial: StrictInt = Field(description="potential financial loss, 1 to 5")
    legal: StrictInt = Field(description="potential legal exposure, 1 to 5")
    reputation: StrictInt = Field(description="harm to the Ministry's reputation, 1 to 5")
    users: StrictInt = Field(description="number of users affected, 1 to 5")

    def to_adb(self) -> Impact:
        """The :class:`drp.domain.adb.Impact` these scores stand for."""
        return Impact(self.financial, self.legal, self.reputation, self.users)


class Step(_Model):
    """One action of a recovery: an Ansible playbook run against one inventory group."""

    id: StrictStr = Field(description="unique in the runbook: lowercase letters, digits, dashes")
    name: StrictStr = Field(description="what the step does, for people")
    action: Action = Field(
        description="fence, promote, switch_traffic, start, verify, check or custom"
    )
    playbook: StrictStr = Field(description="a playbook file name in playbook_dir")
    targets: StrictStr = Field(description="an inventory group the playbook runs against")
    timeout_seconds: StrictInt = Field(description="hard limit: the run is stopped after it")
    budget_seconds: StrictInt = Field(description="the time the plan expects the step to take")
    requires_approval: StrictBool = Field(
        default=False, description="pause for approval (see approval) before running"
    )
    extra_vars: dict[StrictStr, Any] = Field(
        default_factory=dict, description="variables passed to the playbook"
    )


class Service(_Model):
    """An IT service to recover at the DRC, with its ADB and its recovery objectives."""

    id: StrictStr = Field(description="unique in the runbook: lowercase letters, digits, dashes")
    name: StrictStr = Field(description="the service's name, for people")
    impact: ImpactScores = Field(description="financial, legal, reputation, users: 1 to 5 each")
    rto_minutes: StrictInt = Field(description="recovery time objective, at most 60 minutes")
    rpo_seconds: StrictInt = Field(description="data loss tolerated, in seconds (0: none)")
    mtdp_minutes: StrictInt = Field(description="maximum tolerable disruption agreed with users")
    priority_group: StrictInt = Field(description="1 is recovered first")
    depends_on: tuple[StrictStr, ...] = Field(
        default=(), description="ids of services that must be recovered first"
    )
    database: StrictStr | None = Field(
        default=None, description="id of the database pair (databases) the service runs on"
    )
    steps: tuple[Step, ...] = Field(description="the steps, in the order they run")

    @property
    def criticality(self) -> Criticality:
        """The ADB level computed from the impact scores (never written by hand)."""
        return criticality(self.impact.to_adb())


class DatabasePair(_Model):
    """A primary at the DC and its standby at the DRC: what fence and promote steps act on."""

    id: StrictStr = Field(description="unique in the runbook: lowercase letters, digits, dashes")
    primary_group: StrictStr = Field(description="inventory group of the primary (DC)")
    standby_group: StrictStr = Field(description="inventory group of the standby (DRC)")


class Approval(_Model):
    """How a step with ``requires_approval`` waits for people."""

    timeout_minutes: StrictInt = Field(default=10, description="how long to wait for approval")
    two_person_rule: StrictBool = Field(
        default=True, description="two different people must approve"
    )


class Execution(_Model):
    """How the plan's services run together (see :mod:`drp.domain.graph`)."""

    max_parallel: StrictInt = Field(
        default=DEFAULT_MAX_PARALLEL, description="services recovering at the same time, at most"
    )
    on_failure: Literal["continue_independent", "stop_all"] = Field(
        default="continue_independent",
        description="continue_independent (services not depending on a failed one go on) or "
        "stop_all",
    )
    group_barrier: StrictBool = Field(
        default=False,
        description="true: a priority group starts only once every earlier group is verified",
    )

    def policy(self) -> Policy:
        return Policy(self.max_parallel, self.on_failure, self.group_barrier)


class Contact(_Model):
    """Where to reach one party: a chat channel and/or a person or mailbox."""

    name: StrictStr = Field(default="", description="who this is")
    channel: StrictStr = Field(default="", description="chat channel, e.g. #drp-kepabeanan")
    contact: StrictStr = Field(default="", description="person, mailbox or phone")


class Coordination(_Model):
    """The parties the IT directorate coordinates with in a national or catastrophic disaster
    (Pasal 13, letters a to g), plus the channel it coordinates from."""

    incident_channel: StrictStr = Field(default="", description="where the IT directorate leads")
    teknis_kepabeanan: Contact | None = Field(default=None, description="Pasal 13(a)")
    teknis_fasilitas_cukai: Contact | None = Field(default=None, description="Pasal 13(b)")
    fasilitas_kepabeanan: Contact | None = Field(default=None, description="Pasal 13(c)")
    penindakan_penyidikan: Contact | None = Field(default=None, description="Pasal 13(d)")
    komunikasi_pengguna_jasa: Contact | None = Field(default=None, description="Pasal 13(e)")
    kepatuhan_internal: Contact | None = Field(default=None, description="Pasal 13(f)")
    instansi_terkait: tuple[Contact, ...] = Field(default=(), description="Pasal 13(g)")


class Runbook(_Model):
    """The DRP as data. Build it through :func:`validate` (or ``drp.runbooks.load_runbook``):
    the model alone checks the shape, not the rules."""

    api_version: Literal["drp/v1"] = Field(alias="apiVersion", description="drp/v1")
    name: StrictStr = Field(description="the runbook's name, for people")
    description: StrictStr = Field(default="", description="what it recovers, for people")
    environment: Environment = Field(description="lab, test or production")
    inventory: StrictStr = Field(description="Ansible YAML inventory, relative to this file")
    playbook_dir: StrictStr = Field(
        default="../playbooks", description="folder of the playbooks, relative to this file"
    )
    approval: Approval = Field(default_factory=Approval, description="timeout_minutes, two_person")
    execution: Execution = Field(
        default_factory=Execution, description="max_parallel, on_failure, group_barrier"
    )
    databases: tuple[DatabasePair, ...] = Field(default=(), description="database pairs")
    services: tuple[Service, ...] = Field(description="the services to recover")
    coordination: Coordination | None = Field(default=None, description="Pasal 13 parties")
    drills: DrillPolicy | None = Field(default=None, description="period_days (Pasal 15)")
    backups: BackupPolicy | None = Field(
        default=None, description="freshness_hours, repository (s3|local), prefix, tables"
    )
    evidence: EvidencePolicy | None = Field(
        default=None, description="bucket, prefix, retention_days: closed ledgers archived"
    )
    roster: Roster | None = Field(default=None, description="people, approver_roles (ChatOps)")
    chat: ChatChannels | None = Field(default=None, description="incident, user_notices")

    def service(self, service_id: str) -> Service:
        """The service with ``service_id`` (KeyError when there is none)."""
        for service in self.services:
            if service.id == service_id:
                return service
        raise KeyError(service_id)

    def database(self, database_id: str | None) -> DatabasePair | None:
        """The database pair with ``database_id``, or None."""
        return next((d for d in self.databases if d.id == database_id), None)

    @property
    def step_count(self) -> int:
        """How many steps the whole plan runs."""
        return sum(len(s.steps) for s in self.services)

    def nodes(self) -> tuple[Node, ...]:
        """The services as the scheduler sees them (:mod:`drp.domain.graph`)."""
        return tuple(
            Node(
                s.id,
                s.priority_group,
                tuple(s.depends_on),
                sum(max(step.budget_seconds, 0) for step in s.steps),
            )
            for s in self.services
        )


# --------------------------------------------------------------------------------------------
# Recovery order (shared by the rules and by drp.domain.plan)


def recovery_order(services: Sequence[Service]) -> tuple[int, ...]:
    """Positions of ``services`` in the order they are recovered.

    Priority group first, then dependencies (a service comes after those it depends on), ties
    broken by file order. A cycle or a dependency on a later group is a problem the rules
    report; here the order stays defined (the earliest service in file order breaks a cycle) so
    that the other rules can still be checked.
    """
    first_index: dict[str, int] = {}
    for index, service in enumerate(services):
        first_index.setdefault(service.id, index)
    needs = [
        {first_index[d] for d in s.depends_on if d in first_index} - {i}
        for i, s in enumerate(services)
    ]
    placed: list[int] = []
    remaining = set(range(len(services)))
    while remaining:
        ready = [i for i in remaining if needs[i].isdisjoint(remaining)]
        pick = min(ready or remaining, key=lambda i: (services[i].priority_group, i))
        placed.append(pick)
        remaining.remove(pick)
    return tuple(placed)


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Validation:
    """What :func:`validate` decided: the runbook when its shape is right, and every problem."""

    runbook: Runbook | None
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """True when the runbook can be planned and run."""
        return self.runbook is not None and not self.problems


_Found = tuple[Loc, str, str]  # (where, message, hint) before lines and sorting


def validate(
    data: Any,
    *,
    playbooks: AbstractSet[str] | None,
    groups: AbstractSet[str] | None,
    lines: Mapping[Loc, int] | None = None,
) -> Validation:
    """Check a parsed runbook against its shape and every rule, reporting all problems at once.

    ``playbooks`` are the playbook file names that exist and ``groups`` the inventory groups;
    ``None`` means the caller could not find out (it reports why), and the check is skipped
    rather than flooding the operator with one problem per step. ``lines`` maps a location to
    its line in the file, when the caller kept them.
    """
    if not isinstance(data, Mapping):
        problem = Problem.at(
            (),
            f"the runbook must be a mapping (apiVersion, name, services, ...); got {_kind(data)}",
            "start from runbooks/lab.yaml and see docs/runbook.md",
            line=(lines or {}).get(()),
        )
        return Validation(None, (problem,))
    found: list[_Found] = list(_unknown_keys(Runbook, data, ()))
    runbook: Runbook | None = None
    try:
        runbook = Runbook.model_validate(dict(data))
    except PydanticValidationError as error:
        found.extend(_shape_problems(error))
    if runbook is not None:
        found.extend(_rule_problems(runbook, playbooks, groups))
    problems = [Problem.at(loc, message, hint) for loc, message, hint in found]
    return Validation(runbook, sort_problems(problems, data, lines))


def _kind(value: Any) -> str:
    """How a value reads to an operator who wrote YAML."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice the operator probably meant, if one is close enough."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _suggest(word: str, choices: Iterable[str], what: str) -> str:
    """``did you mean 'x'?`` or the list of valid choices."""
    options = sorted(choices)
    close = _closest(word, options)
    if close is not None:
        return f"did you mean '{close}'?"
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"known {what}: {shown}" if options else f"no {what} are known"


# -- shape ------------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` so the walker sees the model or container type."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else annotation
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    target = _unwrap(annotation)
    return target if isinstance(target, type) and issubclass(target, BaseModel) else None


def _element_of(annotation: Any) -> Any | None:
    """The item type of ``tuple[X, ...]`` or ``list[X]``."""
    target = _unwrap(annotation)
    if get_origin(target) in (tuple, list):
        return get_args(target)[0]
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key the YAML uses (the alias when there is one)."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _unknown_keys(model: type[BaseModel], raw: Any, loc: Loc) -> Iterator[_Found]:
    """Keys that no field of ``model`` (or of the models nested in it) knows."""
    if not isinstance(raw, Mapping):
        return
    fields = _fields(model)
    for key, value in raw.items():
        info = fields.get(key) if isinstance(key, str) else None
        if info is None:
            hint = _suggest(str(key), fields, "keys here")
            yield (*loc, key), f"unknown key '{key}'", hint
            continue
        yield from _unknown_in_value(info.annotation, value, (*loc, key))


def _unknown_in_value(annotation: Any, value: Any, loc: Loc) -> Iterator[_Found]:
    model = _model_of(annotation)
    if model is not None:
        yield from _unknown_keys(model, value, loc)
        return
    element = _element_of(annotation)
    if element is not None and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unknown_in_value(element, item, (*loc, index))


def _description_at(loc: Loc) -> str:
    """The description of the field at ``loc``, used as the hint for a shape problem."""
    annotation: Any = Runbook
    description = ""
    for part in loc:
        model = _model_of(annotation)
        if isinstance(part, str) and model is not None:
            info = _fields(model).get(part)
            if info is None:
                return description
            annotation, description = info.annotation, info.description or ""
        elif isinstance(part, int) and _element_of(annotation) is not None:
            annotation = _element_of(annotation)
        else:
            return description
    return description


_EXPECTED = {
    "int_type": "a whole number",
    "string_type": "text",
    "bool_type": "true or false",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "dict_type": "a mapping (key: value lines)",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _shape_problems(error: PydanticValidationError) -> Iterator[_Found]:
    """Pydantic's errors, said the way an operator editing YAML needs to hear them."""
    for detail in error.errors(include_url=False):
        loc: Loc = tuple(detail["loc"])
        kind = detail["type"]
        hint = _description_at(loc)
        if kind == "missing":
            yield loc, "required field is missing", f"add {loc[-1]}: {hint}" if hint else ""
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", detail.get("ctx", {}).get("expected", ""))
            given = detail["input"]
            close = _closest(given, choices) if isinstance(given, str) else None
            message = f"{_kind(given)} is not one of: {', '.join(choices)}"
            yield loc, message, f"did you mean '{close}'?" if close else hint
        elif kind in _EXPECTED:
            yield loc, f"should be {_EXPECTED[kind]}; got {_kind(detail['input'])}", hint
        else:
            message = str(detail["msg"]).removeprefix("Input ").removeprefix("Value ")
            yield loc, f"{message}; got {_kind(detail['input'])}", hint


# -- rules ------------------------------------------------------------------------------------


def _rule_problems(
    runbook: Runbook, playbooks: AbstractSet[str] | None, groups: AbstractSet[str] | None
) -> Iterator[_Found]:
    if not runbook.services:
        yield (
            ("services",),
            "the runbook lists no services, so it recovers nothing",
            "add at least one service (see docs/runbook.md)",
        )
    yield from _id_problems(runbook)
    yield from _approval_problems(runbook)
    yield from _execution_problems(runbook)
    yield from _database_problems(runbook, groups)
    for index, service in enumerate(runbook.services):
        yield from _service_problems(runbook, index, service, playbooks, groups)
    yield from _dependency_problems(runbook)
    yield from _plan_order_problems(runbook)


def _id_problems(runbook: Runbook) -> Iterator[_Found]:
    """Ids are well formed and unique: run records and artifacts are keyed by them."""
    hint = "use lowercase letters, digits and dashes, e.g. skp-database"
    located: list[tuple[str, str, Loc]] = [
        ("database", d.id, ("databases", i, "id")) for i, d in enumerate(runbook.databases)
    ]
    for i, service in enumerate(runbook.services):
        located.append(("service", service.id, ("services", i, "id")))
        located.extend(
            ("step", step.id, ("services", i, "steps", j, "id"))
            for j, step in enumerate(service.steps)
        )
    seen: dict[tuple[str, str], Loc] = {}
    for what, value, loc in located:
        if not ID_PATTERN.match(value):
            yield loc, f"{what} id {value!r} is not lowercase letters, digits and dashes", hint
        first = seen.setdefault((what, value), loc)
        if first != loc:
            yield (
                loc,
                f"duplicate {what} id '{value}', already used at {format_path(first)}",
                f"give each {what} its own id (run records and evidence name {what}s by id)",
            )


def _approval_problems(runbook: Runbook) -> Iterator[_Found]:
    timeout = runbook.approval.timeout_minutes
    if timeout < 1:
        yield (
            ("approval", "timeout_minutes"),
            f"{timeout} is not a usable approval timeout",
            "give approvers at least 1 minute; the wait counts against the RTO",
        )
    elif timeout > RTO_LIMIT_MINUTES:
        yield (
            ("approval", "timeout_minutes"),
            f"{timeout} minutes is longer than the whole {RTO_LIMIT_MINUTES}-minute RTO "
            "limit of Pasal 3(1)(b)",
            "an approval that waits this long has already missed the RTO; use a shorter timeout",
        )


def _execution_problems(runbook: Runbook) -> Iterator[_Found]:
    limit = runbook.execution.max_parallel
    if not 1 <= limit <= MAX_PARALLEL_LIMIT:
        yield (
            ("execution", "max_parallel"),
            f"{limit} services at once is outside 1..{MAX_PARALLEL_LIMIT}",
            f"use 1 to run services one after another, up to {MAX_PARALLEL_LIMIT}; "
            f"the default is {DEFAULT_MAX_PARALLEL}",
        )


def _database_problems(runbook: Runbook, groups: AbstractSet[str] | None) -> Iterator[_Found]:
    for index, pair in enumerate(runbook.databases):
        for field in ("primary_group", "standby_group"):
            group = getattr(pair, field)
            if groups is not None and group not in groups:
                yield (
                    ("databases", index, field),
                    f"unknown inventory group '{group}'",
                    _suggest(group, groups, "groups"),
                )
        if pair.primary_group == pair.standby_group:
            yield (
                ("databases", index, "standby_group"),
                f"the standby group is the primary group '{pair.primary_group}'",
                "the standby must be the DRC copy of the DC primary, in its own group",
            )


def _service_problems(
    runbook: Runbook,
    index: int,
    service: Service,
    playbooks: AbstractSet[str] | None,
    groups: AbstractSet[str] | None,
) -> Iterator[_Found]:
    here: Loc = ("services", index)
    rto = service.rto_minutes
    if rto > RTO_LIMIT_MINUTES:
        yield (
            (*here, "rto_minutes"),
            f"{rto} exceeds the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b)",
            "split the service or shorten its steps",
        )
    elif rto < 1:
        yield (*here, "rto_minutes"), f"{rto} is not a usable RTO", "give at least 1 minute"
    if service.mtdp_minutes < rto:
        yield (
            (*here, "mtdp_minutes"),
            f"MTDP of {service.mtdp_minutes} minutes is shorter than the RTO of {rto} minutes: "
            "users would stop tolerating the outage before recovery is due",
            "MTDP is agreed with the users (Pasal 1 angka 13); raise it or lower rto_minutes",
        )
    if service.rpo_seconds < 0:
        yield (
            (*here, "rpo_seconds"),
            f"RPO of {service.rpo_seconds} seconds is negative",
            "RPO is the data loss tolerated, in seconds; use 0 for none (synchronous standby)",
        )
    if service.priority_group < 1:
        yield (
            (*here, "priority_group"),
            f"priority group {service.priority_group} is below 1",
            "number priority groups from 1 (recovered first)",
        )
    for factor in ("financial", "legal", "reputation", "users"):
        score = getattr(service.impact, factor)
        if not 1 <= score <= 5:
            yield (
                (*here, "impact", factor),
                f"impact score {score} is outside 1..5",
                "score each ADB factor from 1 (negligible) to 5 (severe)",
            )
    if service.database is not None and runbook.database(service.database) is None:
        yield (
            (*here, "database"),
            f"unknown database pair '{service.database}'",
            _suggest(service.database, [d.id for d in runbook.databases], "database pairs"),
        )
    if not service.steps:
        yield (
            (*here, "steps"),
            "the service has no steps, so the plan never recovers it",
            "add at least a verify step",
        )
    for j, step in enumerate(service.steps):
        yield from _step_problems((*here, "steps", j), step, playbooks, groups)


def _step_problems(
    here: Loc, step: Step, playbooks: AbstractSet[str] | None, groups: AbstractSet[str] | None
) -> Iterator[_Found]:
    if step.timeout_seconds < 1:
        yield (
            (*here, "timeout_seconds"),
            f"{step.timeout_seconds} is not a usable timeout",
            "give every step a timeout of at least 1 second",
        )
    if step.budget_seconds < 1:
        yield (
            (*here, "budget_seconds"),
            f"{step.budget_seconds} is not a usable budget",
            "give every step the time you expect it to take, at least 1 second",
        )
    elif step.budget_seconds > step.timeout_seconds >= 1:
        yield (
            (*here, "budget_seconds"),
            f"budget of {step.budget_seconds} s is above the step's timeout of "
            f"{step.timeout_seconds} s: the step would be stopped before its budget is spent",
            "raise timeout_seconds or lower budget_seconds",
        )
    if playbooks is not None and step.playbook not in playbooks:
        yield (
            (*here, "playbook"),
            f"unknown playbook '{step.playbook}' (not in the playbook directory)",
            _suggest(step.playbook, playbooks, "playbooks"),
        )
    if groups is not None and step.targets not in groups:
        yield (
            (*here, "targets"),
            f"unknown inventory group '{step.targets}'",
            _suggest(step.targets, groups, "groups"),
        )


def _dependency_problems(runbook: Runbook) -> Iterator[_Found]:
    """Dependencies name known services in the same or an earlier group, with no cycle."""
    index = {s.id: i for i, s in reversed(list(enumerate(runbook.services)))}
    for i, service in enumerate(runbook.services):
        for k, dep in enumerate(service.depends_on):
            loc: Loc = ("services", i, "depends_on", k)
            if dep not in index:
                yield loc, f"depends on unknown service '{dep}'", _suggest(dep, index, "services")
                continue
            other = runbook.services[index[dep]]
            if other.priority_group > service.priority_group:
                yield (
                    loc,
                    f"depends on '{dep}' in priority group {other.priority_group}, which is "
                    f"recovered after this service's group {service.priority_group}",
                    f"move '{dep}' to group {service.priority_group} or earlier, or this "
                    f"service to group {other.priority_group} or later",
                )
    for cycle in _cycles(runbook.services):
        yield (
            ("services", index[cycle[0]], "depends_on"),
            f"dependency cycle: {' -> '.join(cycle)}",
            "a service cannot wait for itself; remove one dependency of the cycle",
        )


def _cycles(services: Sequence[Service]) -> list[tuple[str, ...]]:
    """Dependency cycles, each once, starting at its member that comes first in the file."""
    index = {s.id: i for i, s in reversed(list(enumerate(services)))}
    edges = {s.id: [d for d in s.depends_on if d in index] for s in reversed(services)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                members = path[path.index(nxt) :]
                start = min(range(len(members)), key=lambda m: index[members[m]])
                rotated = members[start:] + members[:start]
                cycle = (*rotated, rotated[0])
                if cycle not in found:
                    found.append(cycle)
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for service in services:
        if service.id not in state:
            visit(service.id)
    return sorted(found, key=lambda c: index[c[0]])


def _plan_order_problems(runbook: Runbook) -> Iterator[_Found]:
    """Rules that follow the plan's graph: fencing before promotion, and the time budgets.

    Services may run at the same time (:mod:`drp.domain.graph`), so a fence happens before a
    promotion only when it comes earlier in the same service, or in a service the promoting
    one depends on (directly or not), or — with ``execution.group_barrier`` — in an earlier
    priority group. A service is recovered when the simulated schedule ends its last step.
    """
    services = runbook.services
    by_id = {s.id: s for s in services}
    for i, service in enumerate(services):
        before = _recovered_before(runbook, service, by_id)
        fenced_earlier = {
            s.database for s in before if s.database and _fences(s, s.database, len(s.steps))
        }
        for j, step in enumerate(service.steps):
            if step.action not in ("fence", "promote"):
                continue
            loc: Loc = ("services", i, "steps", j, "action")
            if service.database is None:
                yield (
                    loc,
                    f"a {step.action} step acts on a database pair, and service "
                    f"'{service.id}' names none",
                    f"set services[{i}].database to one of the ids under databases",
                )
            elif step.action == "promote" and not (
                service.database in fenced_earlier or _fences(service, service.database, j)
            ):
                yield (
                    loc,
                    f"promote of '{service.database}' with no fence step for it that is sure "
                    "to run before (earlier in this service, or in a service it depends on): "
                    "the old primary could still accept writes (two writable primaries)",
                    f"add a step with action: fence for '{service.database}' before "
                    f"'{step.id}', in this service or in one it depends on",
                )
    schedule = simulate(runbook.nodes(), runbook.execution.policy())
    for i, service in enumerate(services):
        slot = schedule.slots.get(service.id)
        rto = service.rto_minutes
        if slot is not None and rto >= 1 and slot.end_s > rto * 60:
            yield (
                ("services", i, "rto_minutes"),
                f"the plan recovers '{service.id}' after {_minutes(slot.end_s)} (its steps, "
                f"after the services it waits for), past its RTO of {rto} min",
                "shorten budgets, run more services at once (execution.max_parallel), move "
                "the service to an earlier priority group, or raise its RTO",
            )
    if schedule.parallel_s > RTO_LIMIT_MINUTES * 60:
        yield (
            ("services",),
            f"the plan needs {_minutes(schedule.parallel_s)} with its services run as the "
            f"graph allows, past the {RTO_LIMIT_MINUTES}-minute limit of Pasal 3(1)(b)",
            "shorten budgets, run more services at once (execution.max_parallel), or move "
            "the least critical services to a separate runbook",
        )


def _fences(service: Service, database: str, before_step: int) -> bool:
    """True when one of the service's first ``before_step`` steps fences ``database``."""
    return service.database == database and any(
        s.action == "fence" for s in service.steps[:before_step]
    )


def _recovered_before(
    runbook: Runbook, service: Service, by_id: Mapping[str, Service]
) -> list[Service]:
    """The services sure to be verified before ``service`` starts: what it depends on,
    directly or not, and with a group barrier every service of an earlier group."""
    found: dict[str, Service] = {}
    todo = list(service.depends_on)
    while todo:
        current = todo.pop()
        if current in found or current not in by_id or current == service.id:
            continue
        found[current] = by_id[current]
        todo.extend(by_id[current].depends_on)
    if runbook.execution.group_barrier:
        for other in runbook.services:
            if other.priority_group < service.priority_group:
                found.setdefault(other.id, other)
    return list(found.values())


def _minutes(seconds: int) -> str:
    """``125`` -> ``2 min 5 s``: budgets are in seconds, RTOs in minutes."""
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
