"""The tries after a page's first answer failed: each recovery step as a sampling plan.

Pure: `ocr.recovery.ladder` names the steps, this module says what each changes (the
n-gram guard's values, the resolution mode) and which apply to a plan; the service runs them
and picks the answer to keep.
"""

from __future__ import annotations

import dataclasses

from openai_ocr.ocr.quality import Verdict, without_loop
from openai_ocr.ocr.resolution import DEFAULT_RESOLUTION, MODES, Family, image_tokens
from openai_ocr.ocr.translation import CompletionResult, SamplingPlan, mode_kwargs
from openai_ocr.settings import RecoverySettings, RecoveryStep

ORDER = ("tiny", "small", "base", "large", "gundam")
"""The resolution modes from the fewest vision tokens to the most."""


def stricter_guard(plan: SamplingPlan, recovery: RecoverySettings) -> SamplingPlan | None:
    """The plan with the n-gram guard at `recovery`'s stricter values and no token exempt (the
    `<td></td>` the default guard lets repeat are DeepSeek-OCR's table loop); None when the
    plan's guard is as strict already."""
    current = plan.vllm_xargs or {}
    ngram = min(int(current.get("ngram_size", recovery.stricter_ngram_size)), recovery.stricter_ngram_size)
    window = max(int(current.get("window_size", recovery.stricter_window_size)), recovery.stricter_window_size)
    stricter = {"ngram_size": ngram, "window_size": window, "whitelist_token_ids": []}
    if current == stricter:
        return None
    return dataclasses.replace(plan, vllm_xargs=stricter)


def larger_resolution(plan: SamplingPlan, family: Family) -> SamplingPlan | None:
    """The plan with the next larger resolution mode the family has (None at the largest)."""
    modes = MODES[family]
    larger = [name for name in ORDER[ORDER.index(plan.resolution) + 1:] if name in modes] \
        if plan.resolution in ORDER else []
    if not larger:
        return None
    name = larger[0]
    return dataclasses.replace(plan, resolution=name, mm_processor_kwargs=mode_kwargs(name, modes[name]))


def step_plan(step: RecoveryStep, plan: SamplingPlan, family: Family,
              recovery: RecoverySettings) -> SamplingPlan | None:
    """What a step sends (the `lite` step: the plan as it is, to another engine)."""
    if step == "stricter_guard":
        return stricter_guard(plan, recovery)
    if step == "next_resolution":
        return larger_resolution(plan, family)
    return plan


def worth_another_try(verdict: Verdict, plan: SamplingPlan) -> bool:
    """A loop always; a cut answer only when the client left max_tokens at the server's
    default (a limit the client chose is what it asked for)."""
    return verdict.loop is not None or (verdict.truncated and not plan.max_tokens_given)


def rank(verdict: Verdict, text: str) -> tuple[bool, bool, int]:
    """Which answer to keep: clean before looping, whole before cut, then the longest text
    once its loop is cut out."""
    return verdict.loop is None, not verdict.truncated, len(without_loop(text, verdict.loop))


def page_image_tokens(family: Family, resolution: str, width: int, height: int) -> int:
    """Vision tokens of one page in a mode (what DeepSeek-OCR spends on it)."""
    modes = MODES[family]
    mode = modes.get(resolution) or modes.get(DEFAULT_RESOLUTION) or next(iter(modes.values()))
    return image_tokens(family, mode, width, height)


def cleaned(result: CompletionResult, verdict: Verdict, cut: bool) -> CompletionResult:
    """The answer with its loop cut out (when `cut`)."""
    if not cut or verdict.loop is None:
        return result
    loop = verdict.loop
    tokens = None if result.tokens is None else result.tokens.without(loop.unit_end, loop.end)
    return dataclasses.replace(result, text=without_loop(result.text, loop), tokens=tokens)
