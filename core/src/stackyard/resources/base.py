"""Shared pieces of every stackyard.dev custom resource: camelCase models, references,
durations, metav1.Condition-shaped status, and the facts a CRD needs about a kind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

GROUP = "stackyard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "stackyard"

# Go duration syntax, as Kubernetes users write it ("90s", "15m", "720h", "1h30m"), so
# that CEL's duration() can read the same strings in validation rules.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ObjectName = Annotated[str, StringConstraints(pattern=DNS_LABEL, min_length=1, max_length=63)]


def duration_seconds(value: str) -> float:
    """Seconds in a Go-style duration string ("1h30m" -> 5400.0)."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 15m, 720h)")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))


def as_timedelta(value: str) -> timedelta:
    return timedelta(seconds=duration_seconds(value))


class CamelModel(BaseModel):
    """Spec models: camelCase on the wire, snake_case in Python; unknown fields ignored
    (the API server has already pruned them against the schema)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


@dataclass(frozen=True)
class Pair:
    """Two optional fields of a model (Python names): `exclusive`, exactly one of them is
    set; otherwise both or neither. `cel` is the rule the API server checks, `check` what
    the model checks (for the operator, which reads resources the API server took)."""

    first: str
    second: str
    message: str
    exclusive: bool = True

    @property
    def cel(self) -> dict[str, str]:
        op = "!=" if self.exclusive else "=="
        return {
            "rule": f"has(self.{to_camel(self.first)}) {op} has(self.{to_camel(self.second)})",
            "message": self.message,
        }

    def check(self, model: BaseModel) -> None:
        both_or_neither = (getattr(model, self.first) is None) == (getattr(model, self.second) is None)
        if both_or_neither == self.exclusive:
            raise ValueError(self.message)


def _pair_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    pairs: tuple[Pair, ...] = cls.pairs
    if pairs:
        schema.setdefault("x-kubernetes-validations", []).extend(pair.cel for pair in pairs)


class PairedModel(CamelModel):
    """A spec model whose `pairs` of optional fields are checked by the API server (CEL
    rules in its schema) and by the model. A subclass that sets its own json_schema_extra
    must add `pair.cel` of its pairs itself."""

    pairs: ClassVar[tuple[Pair, ...]] = ()
    model_config = CamelModel.model_config | {"json_schema_extra": _pair_rules}

    @model_validator(mode="after")
    def _check_pairs(self) -> Self:
        for pair in self.pairs:
            pair.check(self)
        return self


class StackRef(CamelModel):
    name: ObjectName = Field(description="Name of the Stack, in the same namespace, that this resource belongs to.")


class SecretKeyRef(CamelModel):
    """A key of a Secret in the resource's namespace."""

    name: ObjectName = Field(description="Name of the Secret.")
    key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        description="Key within the Secret's data."
    )


class Condition(CamelModel):
    """The metav1.Condition shape."""

    type: Annotated[str, StringConstraints(max_length=316)] = Field(description="Type of condition in CamelCase.")
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: Annotated[str, StringConstraints(max_length=1024)] = Field(
        description="Programmatic identifier in CamelCase for the last transition."
    )
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="", description="Human-readable details about the last transition."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set on."
    )
    last_transition_time: str = Field(
        description="When the condition last changed status.", json_schema_extra={"format": "date-time"}
    )


class ResourceStatus(CamelModel):
    observed_generation: int | None = Field(default=None, description="The .metadata.generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current state; Ready says whether the resource is in force.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Whether it is in force"
)
REASON_COLUMN = PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class ConditionInfo:
    """A condition type a kind's status gets: what True means, who sets it (the operator, or
    a component of the Stack: the worker, the search component) and its reasons, each with
    what it means."""

    type: str
    meaning: str
    reasons: dict[str, str]
    set_by: Literal["operator", "worker", "search"] = "operator"


MEMBER_READY_REASONS = {
    "InForce": "True: the resource is in the config of its Stack.",
    "Invalid": "False: the spec does not parse or breaks a rule (the message names the field).",
    "StackNotReady": "False: its Stack applies nothing now (the message says why); what is in force stays.",
    "StackNotFound": "False: no Stack of spec.stackRef's name in the namespace.",
}


def secret_reasons(refs: str = "", consequence: str = "") -> dict[str, str]:
    """The reasons of a Secret reference that does not resolve: of `refs` (the fields, when
    not every reference of the kind), with what follows from it."""
    secret = f"a Secret that {refs} references" if refs else "a referenced Secret"
    then = f"; {consequence}" if consequence else ""
    return {
        "SecretNotFound": f"False: {secret} does not exist{then}.",
        "SecretKeyNotFound": f"False: {secret} has no such key{then}.",
    }


SECRET_REASONS = secret_reasons()
DISABLED_REASON = {"Disabled": "True: in the config, but not used while spec.enabled is false."}
PAUSED_REASON = {"Paused": "True: in force, paused while spec.paused is true."}
LAST_GOOD = " When a last good version of it passed, that version stays in force (the message says so)."


def member_ready(**extra: str) -> ConditionInfo:
    """Ready of a Stack's member: the reasons every member can get, and `extra` (its own)."""
    return ConditionInfo(
        "Ready",
        "The resource is in force in its Stack's config." + LAST_GOOD,
        {**MEMBER_READY_REASONS, **extra},
    )


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    short_names: list[str]
    description: str
    columns: list[PrinterColumn] = field(default_factory=list)
    conditions: list[ConditionInfo] = field(default_factory=list)
    """Every condition type the kind's status gets (docs/reference/crds.md)."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


class CustomResource(CamelModel):
    """A whole custom resource: kinds subclass this with their spec and status types."""

    info: ClassVar[KindInfo]
    api_version: Literal["stackyard.dev/v1alpha1"] = "stackyard.dev/v1alpha1"
    kind: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 0))
