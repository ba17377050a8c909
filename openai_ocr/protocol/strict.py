"""Strict request bodies whose unknown fields cost one error each for a few, not one per key.

pydantic's `extra="forbid"` makes one validation error per unknown key: a body of a million
keys made a million error objects (GBs, seconds). A schema that refuses unknown fields calls
`few_unknown_keys` in a `mode="before"` validator: the first `UNKNOWN_REPORTED` unknown keys
stay for pydantic to report (with the closest known name, `temprature` -> `temperature`), the
rest are dropped before validation.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

UNKNOWN_REPORTED = 3
"""Unknown fields of one object reported by name; more are refused all the same."""


def few_unknown_keys(data: Any, known: Collection[str]) -> Any:
    """`data` with at most UNKNOWN_REPORTED of its keys outside `known` (anything that is not
    a dict is returned as it is, for pydantic to refuse)."""
    if not isinstance(data, dict):
        return data
    unknown = [key for key in data if key not in known]
    if len(unknown) <= UNKNOWN_REPORTED:
        return data
    reported = set(unknown[:UNKNOWN_REPORTED])
    return {key: value for key, value in data.items() if key in known or key in reported}
