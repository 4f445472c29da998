"""Flows: the ordered step keys of each setup (Entra, Okta), and the signature stored on a run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    key: str
    idp: str  # "entra" or "okta"
    title: str
    step_keys: tuple[str, ...]

    @property
    def signature(self) -> str:
        """Changes whenever the step list changes; a run refuses to resume under another one."""
        return flow_signature(self.step_keys)


def flow_signature(step_keys: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256("\n".join(step_keys).encode()).hexdigest()


FLOWS: dict[str, Flow] = {}


def register_flow(flow: Flow) -> Flow:
    FLOWS[flow.key] = flow
    return flow


def get_flow(key: str) -> Flow:
    try:
        return FLOWS[key]
    except KeyError:
        raise LookupError(f"no flow is registered under {key!r}") from None
