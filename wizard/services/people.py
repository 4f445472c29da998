"""Invites people, changes their role and deactivates them, auditing each change; never leaves the
wizard without an active admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext, gettext_noop

from provisioning.audit import AuditScope, record_state_change
from provisioning.messages import Message
from provisioning.models import AuditKind
from wizard.roles import ADMIN, ROLE_CACHE, ROLES, role_group, role_of


def _scope(actor: Any) -> AuditScope:
    return AuditScope(actor_label=actor.get_username(), actor_id=actor.pk)


def _person(person_id: int) -> AbstractUser:
    person = get_user_model().objects.select_for_update().filter(pk=person_id).first()
    if person is None:
        raise ValidationError(gettext("No person has this ID."))
    return person


def _refuse_if_last_admin(person: AbstractUser) -> None:
    users = get_user_model()
    # Lock the active people first (a join to groups can't be locked on PostgreSQL), so two
    # admins demoting or deactivating each other at once can't both pass this check.
    list(users.objects.select_for_update().filter(is_active=True).values_list("pk", flat=True))
    others = (
        users.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=ADMIN))
        .exclude(pk=person.pk)
    )
    if role_of(person) == ADMIN and not others.exists():
        raise ValidationError(
            gettext(
                "%(name)s is the last active admin. Make someone else an admin first, so the "
                "wizard always has someone who can manage people and connections."
            )
            % {"name": person.get_username()}
        )


def _set_role(person: AbstractUser, role: str) -> None:
    person.groups.remove(*person.groups.filter(name__in=ROLES))
    person.groups.add(role_group(role))
    person.__dict__.pop(ROLE_CACHE, None)


def person_invite(*, actor: Any, username: str, email: str, role: str) -> AbstractUser:
    """Create a person with a role and no password: they choose one with their set-password
    link."""
    users = get_user_model()
    with transaction.atomic():
        if users.objects.filter(username__iexact=username).exists():
            raise ValidationError(
                gettext("Someone is already called “%(name)s”. Choose another user name.")
                % {"name": username}
            )
        person = users(username=username, email=email)
        person.set_unusable_password()
        person.save()
        _set_role(person, role)
        record_state_change(
            _scope(actor),
            kind=AuditKind.PERSON,
            old={},
            new={"person": username, "role": role, "active": True},
            message=Message(
                gettext_noop("%(username)s invited as %(role)s."),
                {"username": username, "role": role},
            ),
        )
    return person


def person_change_role(*, actor: Any, person_id: int, role: str) -> None:
    with transaction.atomic():
        person = _person(person_id)
        if person.is_superuser:
            raise ValidationError(
                gettext(
                    "%(name)s is a superuser, and a superuser is always an admin. Their role "
                    "can't be changed here."
                )
                % {"name": person.get_username()}
            )
        old_role = role_of(person)
        if old_role == role:
            return
        if role != ADMIN:
            _refuse_if_last_admin(person)
        _set_role(person, role)
        record_state_change(
            _scope(actor),
            kind=AuditKind.PERSON,
            old={"person": person.get_username(), "role": old_role},
            new={"person": person.get_username(), "role": role},
            message=Message(
                gettext_noop("%(username)s's role changed from %(old_role)s to %(role)s."),
                {"username": person.get_username(), "old_role": old_role, "role": role},
            ),
        )


def person_deactivate(*, actor: Any, person_id: int) -> None:
    """Deactivate a person: they can't sign in any more; their runs and audit rows stay."""
    with transaction.atomic():
        person = _person(person_id)
        if person.pk == actor.pk:
            raise ValidationError(
                gettext("You can't deactivate yourself. Ask another admin to do it.")
            )
        if not person.is_active:
            return
        _refuse_if_last_admin(person)
        person.is_active = False
        person.save(update_fields=["is_active"])
        record_state_change(
            _scope(actor),
            kind=AuditKind.PERSON,
            old={"person": person.get_username(), "active": True},
            new={"person": person.get_username(), "active": False},
            message=Message(
                gettext_noop("%(username)s deactivated."), {"username": person.get_username()}
            ),
        )
