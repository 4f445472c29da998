"""Graph's delta queries on groups and users as the sandbox answers them: the directory's changes
(members added and removed, users made, changed or deleted) in one log, and the state tokens in
@odata.nextLink / @odata.deltaLink that say where in the log a client stands.

What is modelled, and where it comes from:
- The call pattern (learn.microsoft.com/graph/delta-query-overview, "Use delta query to track
  changes in a resource collection"): GET /groups/delta or /users/delta; pages with
  @odata.nextLink ($skiptoken) until a page with @odata.deltaLink ($deltatoken); a page never has
  both; following the deltaLink later returns what changed since, and a new deltaLink. Query
  parameters go on the first request only and travel inside the tokens.
- "Sync from now" (same page): `$deltatoken=latest` answers with a deltaLink and no resources.
- Groups (learn.microsoft.com/graph/api/group-delta, learn.microsoft.com/graph/delta-query-
  groups): with $select=members, a changed group carries `members@delta`, only the members that
  changed; a removed member has `"@removed": {"reason": "deleted"}`. The first round lists every
  group with all its members.
- Users (learn.microsoft.com/graph/api/user-delta): a changed user with its selected
  properties; a deleted one as {"id", "@removed": {"reason": "changed"}} (the user-delta page:
  "changed" for a deleted item that can be restored, as a user is for 30 days).
- Scoping (delta-query-overview, "Optional query parameters"; the Q&A thread
  learn.microsoft.com/answers/questions/1090594): the only $filter is on ids,
  `id eq '{a}' or id eq '{b}'`; any other filter is 400 Request_UnsupportedQuery
  "Unsupported Query.".
- Expiry (devblogs.microsoft.com/microsoft365dev/duration-of-change-tracking-tokens-for-
  identity-and-education-resources/): directory delta links live seven days; after that 400
  with code syncStateNotFound, "The sync state generation is not found. The delta token is
  expired and data must be synchronized again." The sandbox also answers so for a token from
  another generation of the log (a restarted sandbox, or `DeltaLog.forget` in tests).
What is not: changes to group properties other than members, and Graph's own page sizes for
delta rounds (undocumented; the sandbox pages at DELTA_PAGE objects).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.entra.odata import QueryError

# The devblog above: "delta links for identity and access ... have a lifetime of seven (7) days".
DELTA_LINK_LIFETIME_S = 7 * 24 * 3600
# Objects per delta page (Graph's own size is not documented; clients follow nextLink either way).
DELTA_PAGE = 200
# $deltatoken=latest: "sync from now" (delta-query-overview).
FROM_NOW = "latest"
_ID_TERM = re.compile(r"\s*id\s+eq\s+'(?P<id>[^']+)'\s*", re.IGNORECASE)
_OR = re.compile(r"\s*\bor\b\s*", re.IGNORECASE)


class DeltaTokenExpired(Exception):
    """The state token is older than a delta link lives, or from another generation of the log."""


@dataclass(frozen=True)
class LoggedChange:
    kind: str  # "member" (a group's direct member added or removed) or "user"
    object_id: str  # the group (member) or the user (user)
    member_id: str = ""
    member_type: str = ""  # "#microsoft.graph.user" or "#microsoft.graph.group"
    removed: bool = False


@dataclass
class DeltaLog:
    """Every change of the directory since the sandbox started, in order. Guarded by the
    tenant's lock (its writers hold it)."""

    generation: str = field(default_factory=lambda: uuid.uuid4().hex)
    entries: list[LoggedChange] = field(default_factory=list)

    def member_changed(self, group_id: str, member: dict[str, Any], *, removed: bool) -> None:
        self.entries.append(
            LoggedChange(
                "member",
                group_id,
                member_id=str(member["id"]),
                member_type=str(member.get("@odata.type") or "#microsoft.graph.user"),
                removed=removed,
            )
        )

    def user_changed(self, user_id: str, *, removed: bool = False) -> None:
        self.entries.append(LoggedChange("user", user_id, removed=removed))

    def forget(self) -> None:
        """Every token handed out so far becomes unknown (what an expired token meets)."""
        self.generation = uuid.uuid4().hex
        self.entries.clear()


def parse_id_filter(text: str | None) -> list[str] | None:
    """The ids of `id eq 'a' or id eq 'b'`; None without a filter."""
    if not text:
        return None
    ids = []
    for term in _OR.split(text.strip()):
        match = _ID_TERM.fullmatch(term)
        if match is None:
            raise QueryError("Unsupported Query.")
        ids.append(match["id"])
    return ids


def encode_state(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_state(token: str, log: DeltaLog) -> dict[str, Any]:
    """The state a $deltatoken or $skiptoken carries; DeltaTokenExpired when it is too old or
    from another generation."""
    try:
        padded = token + "=" * (-len(token) % 4)
        state = json.loads(base64.urlsafe_b64decode(padded))
        position, issued = int(state["position"]), float(state["issued"])
    except (ValueError, KeyError, TypeError) as error:
        raise QueryError("Invalid state token.", "Request_BadRequest") from error
    if state.get("generation") != log.generation or position > len(log.entries):
        raise DeltaTokenExpired
    if time.time() - issued > DELTA_LINK_LIFETIME_S:
        raise DeltaTokenExpired
    return dict(state)


def new_state(log: DeltaLog, *, ids: list[str] | None, select: list[str]) -> dict[str, Any]:
    return {
        "generation": log.generation,
        "position": len(log.entries),
        "issued": time.time(),
        "ids": ids,
        "select": select,
    }


def changed_groups(
    log: DeltaLog, since: int, until: int, ids: list[str] | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """group id -> member id -> its members@delta entry (the member's last change wins)."""
    wanted = set(ids) if ids is not None else None
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for change in log.entries[since:until]:
        if change.kind != "member" or (wanted is not None and change.object_id not in wanted):
            continue
        entry: dict[str, Any] = {"@odata.type": change.member_type, "id": change.member_id}
        if change.removed:
            entry["@removed"] = {"reason": "deleted"}
        found.setdefault(change.object_id, {})[change.member_id] = entry
    return found


def changed_users(log: DeltaLog, since: int, until: int, ids: list[str] | None) -> dict[str, bool]:
    """user id -> whether it was deleted (its last change wins)."""
    wanted = set(ids) if ids is not None else None
    found: dict[str, bool] = {}
    for change in log.entries[since:until]:
        if change.kind == "user" and (wanted is None or change.object_id in wanted):
            found[change.object_id] = change.removed
    return found
