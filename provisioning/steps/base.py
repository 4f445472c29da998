"""The step contract (plan read-only, apply idempotent, verify, rollback) and the step registry."""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from django.utils.translation import gettext_noop

from provisioning import messages
from provisioning.messages import Message

if TYPE_CHECKING:
    from django import forms
    from django.utils.functional import _StrPromise as StrPromise

    from provisioning.context import StepContext

ChangeAction = Literal["create", "update", "adopt", "delete", "nothing"]
# Actions that write to a cloud: what they write (details, diff) is part of what the admin confirms.
WRITING_ACTIONS = ("create", "update", "delete")


@dataclass
class Change:
    """One change a step would make to one cloud resource."""

    action: ChangeAction
    resource_type: str  # "connect_instance", "saml_provider", "iam_role", ...
    name: str
    details: dict[str, Any] = field(default_factory=dict)
    # A unified diff or a before/after pair, for updates.
    diff: str = ""

    @property
    def resource(self) -> tuple[str, str]:
        return (self.resource_type, self.name)

    def confirmed_part(self) -> tuple[str, str]:
        """What the admin agrees to when confirming this change: the action, and for a change
        that writes, the values it writes and what they replace (details and diff; an update
        confirmed over one value is not confirmed over another). What a "nothing" or "adopt"
        change read (an instance's status, an ARN) is a fact of the moment, left out."""
        if self.action not in WRITING_ACTIONS:
            return (self.action, "")
        written = json.dumps([self.details, self.diff], sort_keys=True, default=str)
        return (self.action, written)


@dataclass
class PlanDifference:
    """One resource whose change differs between a confirmed plan and a fresh one. `confirmed`
    and `now` are the actions ("" when that plan has no change for the resource); `values`
    says the action is the same but what it writes is not."""

    resource_type: str
    name: str
    confirmed: str
    now: str
    values: bool = False

    def summary(self) -> Message:
        """One line for the audit log."""
        if self.values:
            return Message(
                gettext_noop("%(resource_type)s %(name)s: %(now)s with other values"),
                {"resource_type": self.resource_type, "name": self.name, "now": self.now},
            )
        return Message(
            gettext_noop("%(resource_type)s %(name)s: %(confirmed)s → %(now)s"),
            {
                "resource_type": self.resource_type,
                "name": self.name,
                "confirmed": self.confirmed or Message(gettext_noop("absent")),
                "now": self.now or Message(gettext_noop("absent")),
            },
        )


@dataclass
class Plan:
    """What apply() would do, shown to the admin before it runs."""

    changes: list[Change] = field(default_factory=list)
    # Messages (provisioning/messages.py); a stored plan holds their JSON form, an older one text.
    warnings: list[Any] = field(default_factory=list)
    # The admin must confirm this plan before apply runs (a risky change, e.g. a new trust policy).
    needs_confirmation: bool = False
    # The step needs the admin's input (its form) before it can plan for real.
    needs_input: bool = False

    @property
    def is_noop(self) -> bool:
        return all(change.action in ("nothing", "adopt") for change in self.changes)

    def differences(self, fresh: Plan) -> list[PlanDifference]:
        """Where `fresh` (planned again just before apply) would do something other than this
        plan, the one the admin confirmed: per resource, the confirmed part of its changes
        (Change.confirmed_part). Warnings, flags and read-only facts are not compared: a plan
        read a second later is the same plan when it makes the same changes."""
        confirmed, now = _by_resource(self.changes), _by_resource(fresh.changes)
        found = []
        for resource in [*confirmed, *(r for r in now if r not in confirmed)]:
            before, after = confirmed.get(resource, []), now.get(resource, [])
            if sorted(c.confirmed_part() for c in before) == sorted(
                c.confirmed_part() for c in after
            ):
                continue
            before_actions = ", ".join(sorted({c.action for c in before}))
            after_actions = ", ".join(sorted({c.action for c in after}))
            found.append(
                PlanDifference(
                    resource_type=resource[0],
                    name=resource[1],
                    confirmed=before_actions,
                    now=after_actions,
                    values=before_actions == after_actions,
                )
            )
        return found

    def to_json(self) -> dict[str, Any]:
        return messages.to_json(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        changes = [Change(**change) for change in data.get("changes", [])]
        return cls(
            changes=changes,
            warnings=list(data.get("warnings", [])),
            needs_confirmation=bool(data.get("needs_confirmation", False)),
            needs_input=bool(data.get("needs_input", False)),
        )


def _by_resource(changes: list[Change]) -> dict[tuple[str, str], list[Change]]:
    grouped: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        grouped.setdefault(change.resource, []).append(change)
    return grouped


@dataclass
class Finding:
    """One check verify() made: what it looked at, whether it holds, and how to fix it if not."""

    # Each a Message (provisioning/messages.py), a lazy translation, or a cloud's own words.
    check: Any
    ok: bool
    detail: Any = ""
    fix: Any = ""
    # False for a check that waits on the admin elsewhere (Okta using the key): shown, but it
    # doesn't fail the step; a later verification gates the run on it.
    blocking: bool = True

    def to_json(self) -> dict[str, Any]:
        return messages.to_json(asdict(self))  # type: ignore[no-any-return]


@dataclass
class StepOutputs:
    """What a step's apply() returns for later steps to read, typed: each step declares a
    subclass (a dataclass with a default for every field) beside it and names its key.

    The runner stores `to_json()` (the same JSON dict a step returned before outputs were
    typed); a later step reads it back with `ctx.outputs_of(TheOutputs)`. `from_json` is
    tolerant, as stored runs outlive a release: keys it doesn't know (the runner's own "verify",
    a field since removed) are left out, and a field missing from an older run takes its
    default."""

    step_key: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        known = {item.name for item in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


def outputs_json(applied: StepOutputs | Mapping[str, Any] | None) -> dict[str, Any]:
    """What apply() returned, as the runner stores it (a JSON dict). Every step of the wizard
    returns its StepOutputs; a plain dict still passes through as it is (a test's own step)."""
    return applied.to_json() if isinstance(applied, StepOutputs) else dict(applied or {})


class Step(ABC):
    """One step of a flow. Subclasses set key/title and implement the four methods (each one,
    even if it has nothing to do: a step that creates nothing says so in its rollback).

    apply() must be idempotent: look resources up by a deterministic name/tag/client token first,
    and record what this run created with ctx.record_created(), so a re-run or a crash at any line
    converges to the same cloud state, and rollback() removes only what this run created.
    """

    key: ClassVar[str]
    # Plain text or a lazy translation (gettext_lazy): the UI speaks English and Japanese.
    title: ClassVar[str | StrPromise]
    description: ClassVar[str | StrPromise] = ""
    # The form that collects this step's inputs, if it has any.
    form_class: ClassVar[type[forms.Form] | None] = None
    # Before applying a plan the admin confirmed, the engine plans again and asks again if the
    # plan changed (provisioning/runs/runner.py). False only for a step whose plan is a stored work
    # list that apply runs row by row, each row checking the cloud as it goes.
    checks_confirmed_plan: ClassVar[bool] = True
    # A succeeded step the admin may run again inside its run (claim phone numbers once AWS
    # Support approved, rotate a key, sign in with another person): it plans afresh and waits for
    # the admin to confirm. rerun_inputs are the answers a re-run changes; one set to None is
    # forgotten, so the step's form asks for it again.
    rerunnable: ClassVar[bool] = False
    rerun_inputs: ClassVar[dict[str, Any]] = {}
    # Keys of the step's stored plan that carry what apply needs of what the plan read (a whole
    # document whose facts the plan's changes show): kept for apply, left out of the plan the run
    # page shows.
    plan_keys_not_shown: ClassVar[frozenset[str]] = frozenset()
    # Before plan, the engine checks the stored answers with form_class (provisioning/steps/
    # inputs.py, stored_input_problems) and keeps the step waiting for input while they don't
    # pass, so plan/apply can read ctx.inputs as the form cleans them. False only for a step
    # whose answers may come from elsewhere (an earlier step's outputs) and which checks them
    # itself.
    inputs_checked_by_form: ClassVar[bool] = True
    # The step waits for the admin's first answer even though every field of its form has a
    # default (where users land is the admin's choice, not ours).
    asks_before_planning: ClassVar[bool] = False

    def form_answers(self, ctx: StepContext) -> dict[str, Any]:
        """The stored answers the engine checks with form_class before plan: the run's inputs
        for the form's fields. A step whose answer can come from the run itself (its instance,
        chosen on the first page) adds it here."""
        fields = self.form_class.base_fields if self.form_class is not None else {}
        return {name: value for name, value in ctx.inputs.items() if name in fields}

    def input_plan(self, ctx: StepContext) -> Plan:
        """The plan of a step waiting for its answers (the engine found them missing or
        refused): it asks. A step whose form shows what it read from the cloud (a directory to
        pick people from) returns that too."""
        return Plan(needs_input=True)

    @abstractmethod
    def plan(self, ctx: StepContext) -> Plan:
        """Read-only: what apply() would change."""

    @abstractmethod
    def apply(self, ctx: StepContext) -> StepOutputs:
        """Make the planned changes, idempotently; return the outputs later steps read (the
        step's StepOutputs)."""

    @abstractmethod
    def verify(self, ctx: StepContext) -> list[Finding]:
        """Re-read the cloud: does the step's result still hold?"""

    @abstractmethod
    def rollback(self, ctx: StepContext) -> None:
        """Remove what this run created (ctx.created_of), never what it adopted."""


STEPS: dict[str, type[Step]] = {}


def register(step_class: type[Step]) -> type[Step]:
    """Class decorator: make a step available to flows by its key."""
    if inspect.isabstract(step_class):
        missing = ", ".join(sorted(step_class.__abstractmethods__))
        raise TypeError(f"the step {step_class.key!r} does not implement {missing}")
    existing = STEPS.get(step_class.key)
    if existing is not None and existing is not step_class:
        raise ValueError(f"two steps share the key {step_class.key!r}")
    STEPS[step_class.key] = step_class
    return step_class


def get_step(key: str) -> Step:
    try:
        return STEPS[key]()
    except KeyError:
        raise LookupError(f"no step is registered under {key!r}") from None


StepFactory = Callable[[], Step]
