"""What a step sees while it runs: the run's answers, earlier outputs, audited cloud clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils.translation import gettext_noop

from provisioning import secret_box
from provisioning.audit import AuditScope
from provisioning.messages import Message
from provisioning.models import AuditKind, Connection, SetupRun, StepRun
from provisioning.redaction import register_secret_values

if TYPE_CHECKING:
    from provisioning.steps.base import StepOutputs

Outputs = TypeVar("Outputs", bound="StepOutputs")


@dataclass(frozen=True)
class CreatedResource:
    """One resource a run's step created (never one it adopted), as record_created() noted it:
    its kind ("iam_role"), the identifier the cloud knows it by, and what rollback needs besides
    (the role a policy is attached to, the value a setting had before)."""

    kind: str
    identifier: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CreatedResource:
        """From a StepRun.created_resources entry: {"resource_type", "identifier", **details}."""
        details = {k: v for k, v in record.items() if k not in ("resource_type", "identifier")}
        return cls(str(record["resource_type"]), str(record["identifier"]), details)


def created_of(records: Iterable[Mapping[str, Any]], *kinds: str) -> list[CreatedResource]:
    """The entries of a StepRun's created_resources of these kinds, in the order recorded."""
    resources = (CreatedResource.from_record(record) for record in records)
    return [resource for resource in resources if resource.kind in kinds]


@dataclass
class StepContext:
    """Handed to Step.plan/apply/verify/rollback by the runner.

    `inputs` is the run's answers merged with this step's own; `outputs` maps each earlier step's
    key to what its apply() returned. Cloud clients come from the client modules, which audit every
    call under `audit`.
    """

    run_id: uuid.UUID
    step_key: str
    region: str
    instance_id: str
    mode: str
    inputs: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    audit: AuditScope
    aws_connection_id: int | None = None
    idp_connection_id: int | None = None
    instance_alias: str = ""
    # The StepRun row that record_created() writes to (None for a context built outside a run).
    step_run_id: int | None = None
    created_resources: list[dict[str, Any]] = field(default_factory=list)
    # The plan the admin saw (as saved), for apply(): a users step finds its change set by it,
    # saml_provider the metadata it registers. The engine's re-check of a confirmed plan hands it
    # to plan() too (the plan made again beside the confirmed one).
    plan: dict[str, Any] = field(default_factory=dict)
    # What apply() read that its own writes can't change, for the verify() the runner calls right
    # after it with this context (empty when verify runs without apply before it).
    read_by_apply: dict[str, Any] = field(default_factory=dict)
    # What plan() read, for the apply() the runner calls right after it in the same worker, with
    # no admin confirmation in between (empty otherwise: then apply reads afresh). Only for what
    # apply would otherwise read again a moment later to decide the same thing.
    read_by_plan: dict[str, Any] = field(default_factory=dict)
    # The connections this context has loaded, by id: a step asks for a client per call site, and
    # one plan, or one apply and its verify, runs with the connection as it was when it started.
    _connections: dict[int, Any] = field(default_factory=dict, repr=False)

    def take_connections(self, connections: list[Any]) -> None:
        """Start with these connections loaded (the runner read them with the run)."""
        for connection in connections:
            self._connections.setdefault(connection.pk, connection)

    def go_on_from(self, planned: StepContext) -> None:
        """This context is the apply that follows `planned`'s plan at once: it takes what that
        plan read and the connections it loaded, so neither is fetched again."""
        self.read_by_plan = planned.read_by_plan
        self._connections = planned._connections

    def record_created(self, resource_type: str, identifier: str, **details: Any) -> None:
        """Note a resource this run created (not adopted), saved at once so rollback finds it even
        if the worker dies on the next line."""
        for entry in self.created_resources:
            if entry["resource_type"] == resource_type and entry["identifier"] == identifier:
                return
        self.created_resources.append(
            {"resource_type": resource_type, "identifier": identifier, **details}
        )
        if self.step_run_id is not None:
            StepRun.objects.filter(pk=self.step_run_id).update(
                created_resources=self.created_resources
            )

    def step_started_at(self) -> Any:
        """When this step's first attempt started (None outside a run): anything the step made
        since then and has not recorded was made by an attempt whose worker died."""
        if self.step_run_id is None:
            return None

        return (
            StepRun.objects.filter(pk=self.step_run_id).values_list("started_at", flat=True).first()
        )

    def set_run_instance(self, *, instance_id: str, instance_alias: str) -> None:
        """Make this the run's Connect instance, so later steps of the run read it from
        ctx.instance_id and ctx.instance_alias. Guarded on the values read, audited as a run
        state change in the same transaction; setting the same values again writes nothing."""
        from django.db import transaction
        from django.utils import timezone

        from provisioning.audit import record_state_change

        new = {"instance_id": instance_id, "instance_alias": instance_alias}
        with transaction.atomic():
            old = (
                SetupRun.objects.select_for_update()
                .filter(pk=self.run_id)
                .values("instance_id", "instance_alias")
                .first()
            )
            if old is not None and old != new:
                updated = SetupRun.objects.filter(pk=self.run_id, **old).update(
                    **new, updated_at=timezone.now()
                )
                if updated:
                    record_state_change(
                        self.audit,
                        kind=AuditKind.RUN_STATE,
                        old=dict(old),
                        new=new,
                        message=Message(
                            gettext_noop("The run's Connect instance is now %(instance)s."),
                            {"instance": instance_alias or instance_id},
                        ),
                    )
        self.instance_id = instance_id
        self.instance_alias = instance_alias

    def outputs_of(self, outputs_class: type[Outputs]) -> Outputs:
        """What an earlier step of the run returned, typed (its fields' defaults when that step
        returned nothing yet, or is not in this run's flow)."""
        return outputs_class.from_json(self.outputs.get(outputs_class.step_key) or {})

    def created_of(self, kind: str, *kinds: str) -> list[CreatedResource]:
        """What this run's step created of these kinds, in the order it recorded them."""
        return created_of(self.created_resources, kind, *kinds)

    def created_here(self, kind: str, identifier: str) -> bool:
        """Whether this run's step created the resource (so it may change or remove it)."""
        return any(record.identifier == identifier for record in self.created_of(kind))

    def store_secret(self, name: str, value: str) -> None:
        """Keep the secret the admin must copy once (an access key for Okta, named by its key
        id) encrypted on the step, never in plan or outputs, masked in every audit row and log
        line. A step keeps one: a new one replaces the old and can be shown once again."""
        if self.step_run_id is None:
            raise RuntimeError("Only a step of a run can keep a secret.")
        register_secret_values([value])
        StepRun.objects.filter(pk=self.step_run_id).update(
            secret_ciphertext=secret_box.encrypt_json({name: value}), secret_revealed_at=None
        )

    def stored_secrets(self) -> dict[str, str]:
        """{name: secret} as store_secret() kept it for this step (registered for redaction)."""
        if self.step_run_id is None:
            return {}
        secrets = StepRun.objects.get(pk=self.step_run_id).secrets
        register_secret_values(secrets.values())
        return secrets

    def _connection(self, connection_id: int | None, role: Message | str) -> Any:
        from provisioning.errors import PermanentError

        if connection_id is None:
            raise PermanentError(
                Message(gettext_noop("This run has no %(role)s connection."), {"role": role}),
                code="connection_missing",
                hint=Message(
                    gettext_noop("Start a new run and choose a connection on the first page.")
                ),
            )
        if connection_id not in self._connections:
            try:
                self._connections[connection_id] = Connection.objects.get(pk=connection_id)
            except Connection.DoesNotExist:
                raise PermanentError(
                    Message(
                        gettext_noop("The %(role)s connection of this run no longer exists."),
                        {"role": role},
                    ),
                    code="connection_missing",
                ) from None
        return self._connections[connection_id]

    def idp_connection(self) -> Any:
        """The run's IdP Connection (its non-secret config: tenant, org URL, sandbox or not)."""
        return self._connection(self.idp_connection_id, Message(gettext_noop("identity provider")))

    def aws(self, service: str) -> Any:
        """A boto3 client for `service` in the run's region, every call audited."""
        from provisioning.aws.client import aws_client

        connection = self._connection(self.aws_connection_id, "AWS")
        return aws_client(connection, service, region=self.region, audit=self.audit)

    def graph(self, *, fresh_sign_in: bool = False) -> Any:
        """A Microsoft Graph client for the run's Entra connection, every call audited; it reuses
        the worker's token for the connection unless `fresh_sign_in`."""
        from provisioning.entra.client import graph_client

        return graph_client(
            self._connection(self.idp_connection_id, "Entra ID"),
            audit=self.audit,
            fresh_sign_in=fresh_sign_in,
        )

    def okta(self) -> Any:
        """An Okta client for the run's Okta connection, every call audited."""
        from provisioning.okta.client import okta_client

        return okta_client(self._connection(self.idp_connection_id, "Okta"), audit=self.audit)
