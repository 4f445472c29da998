"""Test flows for the connect_users, group_users, okta_role_listing_user and phone_prerequisites
tests (registered on import, in the test process and in the worker): one-step flows of each.
A crash in the middle of a step comes from tests/steps/crash_points.py (run input `crash_after`).
"""

from __future__ import annotations

from provisioning.flows import Flow, register_flow

for _key, _idp in (
    ("connect_users", "entra"),
    ("okta_role_listing_user", "okta"),
    ("phone_prerequisites", "entra"),
):
    register_flow(Flow(key=f"test_only_{_key}", idp=_idp, title=_key, step_keys=(_key,)))
register_flow(
    Flow(key="test_only_group_users", idp="entra", title="group_users", step_keys=("group_users",))
)
register_flow(
    Flow(
        key="test_only_okta_group_users",
        idp="okta",
        title="group_users",
        step_keys=("group_users",),
    )
)
