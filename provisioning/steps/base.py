"""The step contract (plan read-only, apply idempotent, verify, rollback) and the step registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from django import forms
    from django.utils.functional import _StrPromise as StrPromise

    from provisioning.context import StepContext

ChangeAction = Literal["create", "update", "adopt", "delete", "nothing"]


@dataclass
class Change:
    """One change a step would make to one cloud resource."""

    action: ChangeAction
    resource_type: str  # "connect_instance", "saml_provider", "iam_role", ...
    name: str
    details: dict[str, Any] = field(default_factory=dict)
    # A unified diff or a before/after pair, for updates.
    diff: str = ""


@dataclass
class Plan:
    """What apply() would do, shown to the admin before it runs."""

    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The admin must confirm this plan before apply runs (a risky change, e.g. a new trust policy).
    needs_confirmation: bool = False
    # The step needs the admin's input (its form) before it can plan for real.
    needs_input: bool = False

    @property
    def is_noop(self) -> bool:
        return all(change.action in ("nothing", "adopt") for change in self.changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        changes = [Change(**change) for change in data.get("changes", [])]
        return cls(
            changes=changes,
            warnings=list(data.get("warnings", [])),
            needs_confirmation=bool(data.get("needs_confirmation", False)),
            needs_input=bool(data.get("needs_input", False)),
        )


@dataclass
class Finding:
    """One check verify() made: what it looked at, whether it holds, and how to fix it if not."""

    check: str
    ok: bool
    detail: str = ""
    fix: str = ""
    # False for a check that waits on the admin elsewhere (Okta using the key): shown, but it
    # doesn't fail the step; a later verification gates the run on it.
    blocking: bool = True


class Step:
    """One step of a flow. Subclasses set key/title and implement the four methods.

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

    def plan(self, ctx: StepContext) -> Plan:
        raise NotImplementedError

    def apply(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self, ctx: StepContext) -> list[Finding]:
        return []

    def rollback(self, ctx: StepContext) -> None:
        return None


STEPS: dict[str, type[Step]] = {}


def register(step_class: type[Step]) -> type[Step]:
    """Class decorator: make a step available to flows by its key."""
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
