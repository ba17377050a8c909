"""A check of ours for schemathesis' runner (loaded with SCHEMATHESIS_HOOKS by
tests/api/test_fuzz_all_routes.py): every error answer says what was wrong."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def error_answers_say_what_was_wrong(ctx: Any, response: Any, case: Any) -> None:
    """A 4xx or 5xx answer carries the error shape with a message (`{"error": {"message"}}`)."""
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict) and error.get("message"), (
            f"{case.method} {case.path}: {response.status_code} without an error message: {response.text[:300]}")
