"""The OpenAI Batch API: validate an input file up front, run its lines, write the results.

Each line runs through the same service code as its interactive route, with the same
limits, on `batches.engine_share` of the engine's slots. A line's answer is stored and
counted in one transaction before the next state change, so after a crash (SIGKILL
included) the runner started with the next server resumes the pending lines only.

On SQLite one process runs the batches of a storage folder (a file lock); on PostgreSQL every
replica runs every batch, claiming its lines a few at a time with leases it renews while they
run (`storage.base.LeasedLines`): the lines of a replica that died are claimed by the others
once its leases run out.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import json
import logging
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from openai_ocr.engines.gated import EngineShare, share_slots
from openai_ocr.errors import (
    BadRequest,
    InsufficientStorage,
    InternalError,
    OCRError,
    PayloadTooLarge,
    UnprocessableEntity,
    excerpt,
    validation_message,
)
from openai_ocr.metrics import Metrics, default_metrics
from openai_ocr.outputs import is_archival
from openai_ocr.protocol.batches import (
    Batch,
    BatchErrors,
    BatchInputLine,
    BatchLineError,
    BatchLineResponse,
    BatchOutputLine,
    BatchRequestCounts,
    CreateBatchBody,
)
from openai_ocr.protocol.mistral import MistralOCRRequest
from openai_ocr.protocol.ocr import OCRRequest
from openai_ocr.protocol.openai import ChatCompletionBody
from openai_ocr.service.archival import Archiver, store_result
from openai_ocr.service.chat_documents import complete_chat
from openai_ocr.service.document_limits import batch_line_scope
from openai_ocr.service.mistral_ocr import mistral_ocr
from openai_ocr.service.quotas import Exhausted, Quotas
from openai_ocr.service.serving import OCRService
from openai_ocr.service.usage import BATCH_ROUTE, metering
from openai_ocr.storage.base import LeasedLines, StateStore
from openai_ocr.storage.store import PendingLine, StoredBatch

try:  # one runner per storage folder, across worker processes
    import fcntl
except ImportError:  # pragma: no cover - Windows: one worker process only
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 100
RETRYABLE = (429, 503)
READ_CHUNK = 256
"""Input lines read from disk at a time (one thread hop each)."""
STATUS_CHECK_S = 0.2
"""How often the runner looks for a cancel while it starts lines."""
MAX_RUN_FAILURES = 5
"""Runs of one batch that may fail in a row (a storage error) before the batch is failed."""
MAX_RETRY_WAIT_S = 60.0
"""The longest wait before a batch whose run failed is tried again."""
BODY_SCHEMAS: dict[str, type[Any]] = {
    "/v1/chat/completions": ChatCompletionBody, "/v1/ocr": MistralOCRRequest, "/ocr": OCRRequest}


def window_seconds(window: str) -> float:
    """"24h" or "90m" in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([hm])", window)
    if not match:
        raise BadRequest(f"completion_window: cannot read {excerpt(window)}; use e.g. \"24h\"",
                         param="completion_window")
    return float(match.group(1)) * (3600 if match.group(2) == "h" else 60)


def validate_lines(data: bytes, endpoint: str, max_requests: int,
                   max_line_bytes: int) -> tuple[list[PendingLine], list[BatchLineError]]:
    """Every line checked before anything runs: JSON, shape, endpoint, body schema, unique ids."""
    lines: list[PendingLine] = []
    errors: list[BatchLineError] = []
    seen: dict[str, int] = {}
    schema = BODY_SCHEMAS[endpoint]
    offset = 0

    def fail(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append(BatchLineError(code=code, message=message, param=param, line=number))

    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(raw)
        if not raw.strip():
            continue
        if len(raw) > max_line_bytes:
            fail(number, "request_too_large", f"line is larger than {max_line_bytes} bytes")
            continue
        try:
            line = BatchInputLine.model_validate_json(raw)
        except ValidationError as exc:
            fail(number, "invalid_request", validation_message(exc.errors(), whole="line"))
            continue
        if line.url != endpoint:
            fail(number, "mismatched_endpoint", f"url {line.url} is not the batch's endpoint "
                 f"{endpoint}", "url")
        elif endpoint == "/v1/chat/completions" and line.body.get("stream"):
            fail(number, "invalid_request", "batch lines cannot stream", "body.stream")
        else:
            try:
                schema.model_validate(line.body)
            except ValidationError as exc:
                fail(number, "invalid_request", "body." + validation_message(exc.errors(), whole="body"),
                     "body")
        if line.custom_id in seen:
            fail(number, "duplicate_custom_id", f"custom_id {excerpt(line.custom_id)} is already used on "
                 f"line {seen[line.custom_id]}", "custom_id")
        seen.setdefault(line.custom_id, number)
        lines.append(PendingLine(len(lines), line.custom_id, start, len(raw)))
    if not lines and not errors:
        errors.append(BatchLineError(code="empty_file", message="the input file holds no requests"))
    if len(lines) > max_requests:
        errors.append(BatchLineError(code="too_many_requests", message=f"a batch holds at most "
                                     f"{max_requests} requests; the file has {len(lines)}"))
    return lines, errors[:MAX_REPORTED_ERRORS]


async def execute_line(service: OCRService, endpoint: str, body: dict[str, Any],
                       owner: str) -> tuple[int, dict[str, Any]]:
    """One request, answered as its interactive route would: (status code, JSON body)."""
    try:
        if endpoint == "/v1/chat/completions":
            chat = ChatCompletionBody.model_validate(body).model_dump(exclude_unset=True)
            answer: Any = await complete_chat(service, chat, owner)
            return 200, answer.model_dump(exclude_unset=True, mode="json")
        if endpoint == "/v1/ocr":
            answer = await mistral_ocr(service, MistralOCRRequest.model_validate(body), owner)
            return 200, answer.model_dump(mode="json")
        request = OCRRequest.model_validate(body)
        if is_archival(request.output):  # the file goes to the store; the line names it
            if service.inputs.store is None:
                raise BadRequest("archival outputs of batch lines need the Files API's store", param="output")
            produced = await Archiver(service.recognizer).read_request(request, owner)
            answer = await store_result(service.inputs.store, produced, owner)
            return 200, answer.model_dump(mode="json")
        answer = await service.recognizer.read_request(request, owner)
        return 200, answer.model_dump(mode="json")
    except ValidationError as exc:
        error: OCRError = UnprocessableEntity(validation_message(exc.errors(), whole="body"))
    except OCRError as exc:
        error = exc
    except Exception:  # noqa: BLE001 - one line's bug must not stop the batch
        logger.exception("batch line failed")
        error = InternalError("internal error while processing this request")
    return error.status_code, error.as_json()


def batch_object(stored: StoredBatch) -> Batch:
    data = {**stored.data, "status": stored.status}
    data.pop("final", None)  # the runner's own note: the end it decided, kept across a restart
    counts = BatchRequestCounts(total=stored.total, completed=stored.completed, failed=stored.failed)
    return Batch.model_validate({**data, "request_counts": counts})


def _result_file_id(batch_id: str, kind: str) -> str:
    return f"file-{batch_id.removeprefix('batch_')}{kind}"


class BatchService:
    """Creates, reads and cancels batches for the routes; runs them in a background task."""

    def __init__(self, service: OCRService, store: StateStore, metrics: Metrics | None = None,
                 quotas: Quotas | None = None) -> None:
        self.settings = service.settings
        self.store = store
        self.metrics = metrics or default_metrics()
        #: the owners' pages quotas: a line waits while its owner's is used up (None: no quotas)
        self.quotas = quotas
        #: batches whose wait for their owner's quota was logged
        self._quota_noted: set[str] = set()
        self.slots = share_slots(service.settings, service.engine)
        # Lines in progress: twice the engine slots, so the next lines' pages are decoded
        # while the engine works (the EngineShare still bounds the engine requests).
        self.lanes = 2 * self.slots
        # The runner's service: the same code and limits, on a share of the engine's slots.
        self.service = service.with_engine(EngineShare(service.engine, self.slots))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_file: IO[bytes] | None = None
        self._last_sweep = 0.0
        #: batches cancelled through this process (the runner may be another worker's)
        self._cancelled: set[str] = set()
        #: batches whose last run failed: (monotonic time of the next try, failures in a row)
        self._paused: dict[str, tuple[float, int]] = {}

    # -- requests ---------------------------------------------------------------------------
    async def create(self, body: CreateBatchBody, owner: str) -> Batch:
        limits = self.settings.batches
        window = window_seconds(body.completion_window)
        if window > limits.max_completion_window_h * 3600:
            raise BadRequest(f"completion_window is longer than {limits.max_completion_window_h:g}h",
                             param="completion_window")
        stored_file = await asyncio.to_thread(self.store.get_file, body.input_file_id, owner)
        if stored_file.purpose != "batch":
            raise BadRequest(f"file {excerpt(body.input_file_id)} has purpose {stored_file.purpose!r}, "
                             "not 'batch'", param="input_file_id")
        if stored_file.bytes > limits.max_input_bytes:
            raise PayloadTooLarge(f"a batch input file holds at most {limits.max_input_bytes} bytes",
                                  param="input_file_id")
        await asyncio.to_thread(self.store.check_room, 0)
        data = await asyncio.to_thread(self.store.read_file, body.input_file_id, owner)
        lines, errors = await asyncio.to_thread(
            validate_lines, data, body.endpoint, limits.max_requests,
            self.settings.limits.max_body_bytes)
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": body.endpoint,
            "input_file_id": body.input_file_id, "completion_window": body.completion_window,
            "created_at": now, "expires_at": now + int(window), "metadata": body.metadata}
        if errors:
            batch.update(status="failed", failed_at=now,
                         errors=BatchErrors(data=errors).model_dump())
            lines = []
        else:
            batch.update(status="in_progress", in_progress_at=now)
        stored = await asyncio.to_thread(self.store.add_batch, owner, batch, lines)
        if errors:
            await asyncio.to_thread(self.store.update_batch, stored.id, finished=True)
        logger.info("batch %s: %s, %d requests", stored.id, stored.status, stored.total)
        self._wake.set()
        return batch_object(await asyncio.to_thread(self.store.get_batch, stored.id))

    async def get(self, batch_id: str, owner: str) -> Batch:
        return batch_object(await asyncio.to_thread(self.store.get_batch, batch_id, owner))

    async def list(self, owner: str, after: str | None, limit: int) -> tuple[list[Batch], bool]:
        found, more = await asyncio.to_thread(self.store.list_batches, owner, after, limit)
        return [batch_object(b) for b in found], more

    async def cancel(self, batch_id: str, owner: str) -> Batch:
        await asyncio.to_thread(self.store.get_batch, batch_id, owner)
        stored = await asyncio.to_thread(
            self.store.update_batch, batch_id, "cancelling", only_from=("validating", "in_progress"),
            cancelling_at=int(time.time()))
        if stored.status == "cancelling":
            self._cancelled.add(batch_id)  # seen by this process's runner before its next line
        self._wake.set()
        return batch_object(stored)

    # -- the runner -------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name="openai-ocr batch runner")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _try_lock(self) -> bool:
        """Only one process runs the batches of a storage folder (the lock dies with it)."""
        if fcntl is None or isinstance(self.store, LeasedLines):  # replicas: all run, lines leased
            return True
        handle = open(Path(self.store.root) / "runner.lock", "ab")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    async def _main(self) -> None:
        poll = self.settings.batches.poll_interval_s
        while not self._try_lock():
            await asyncio.sleep(poll)
        logger.info("batch runner started (%d engine slots)", self.slots)
        while True:
            ran = False
            try:
                if self.store.problem is None:  # a damaged store: nothing to run until repaired
                    await self._sweep_if_due()
                    for batch in await asyncio.to_thread(self.store.active_batches):
                        ran = await self._run_isolated(batch) or ran
                    await self._publish_metrics()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the runner must outlive its store's failures
                logger.exception("batch runner pass failed; retrying")
            if not ran:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def _sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep >= self.settings.storage.sweep_interval_s:
            self._last_sweep = time.monotonic()
            try:
                files, batches = await asyncio.to_thread(self.store.sweep)
            except Exception:  # noqa: BLE001 - retention must not hold up the batches
                logger.exception("retention sweep failed; trying again in %g s",
                                 self.settings.storage.sweep_interval_s)
                return
            if files or batches:
                logger.info("retention: deleted %d files and %d batches", files, batches)

    async def _publish_metrics(self) -> None:
        counts = await asyncio.to_thread(self.store.count_by_status)
        for status in ("validating", "failed", "in_progress", "finalizing", "completed", "expired",
                       "cancelling", "cancelled"):
            self.metrics.batches.labels(status).set(counts.get(status, 0))
        self.metrics.batch_queue.set(await asyncio.to_thread(self.store.pending_total))

    async def _run_isolated(self, batch: StoredBatch) -> bool:
        """Run one batch so that its failure stays its own: a run that fails is tried again
        later (the other batches go on meanwhile), `MAX_RUN_FAILURES` in a row fail it.
        False when the batch waits for its next try, or for its owner's quota."""
        retry_at, failures = self._paused.get(batch.id, (0.0, 0))
        if time.monotonic() < retry_at:
            return False
        progressed = True
        try:
            progressed = await self._run(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one batch must not stop the others
            if self.store.problem is not None:
                raise  # the store is down, not this batch: the pass waits for it
            await self._after_failure(batch, exc, failures + 1)
        else:
            self._paused.pop(batch.id, None)
        return progressed

    async def _after_failure(self, batch: StoredBatch, exc: Exception, failures: int) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if failures >= MAX_RUN_FAILURES:
            logger.error("batch %s: its run failed %d times in a row (%s); failing it",
                         batch.id, failures, reason, exc_info=exc)
            self._paused[batch.id] = (time.monotonic() + MAX_RETRY_WAIT_S, failures)
            with contextlib.suppress(Exception):  # if even this fails, it is tried again later
                await self._finalize(batch.id, "failed", [BatchLineError(
                    code="batch_error", message=f"the batch stopped after {failures} failed "
                    f"attempts to run it (last: {reason}); the answers recorded before are in "
                    "its output and error files")])
                self._paused.pop(batch.id, None)
            return
        wait = min(MAX_RETRY_WAIT_S, self.settings.batches.poll_interval_s * 2 ** failures)
        self._paused[batch.id] = (time.monotonic() + wait, failures)
        logger.warning("batch %s: its run failed (%s), attempt %d of %d; trying again in %.0f s",
                       batch.id, reason, failures, MAX_RUN_FAILURES, wait, exc_info=exc)
        note = BatchErrors(data=[BatchLineError(
            code="batch_retrying", message=f"running the batch failed ({reason}); trying again "
            f"(attempt {failures} of {MAX_RUN_FAILURES})")]).model_dump()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.update_batch, batch.id, errors=note)

    async def _run(self, batch: StoredBatch) -> bool:
        """Run the pending lines of one batch, then write its output and error files; False
        (nothing written) while it waits for its owner's pages quota to reset or, cancelled,
        for other replicas to end the lines they hold (so none starts after it is published;
        answers arriving after the cancel are not recorded, as with one replica)."""
        await self._publish_metrics()
        errors: builtins.list[BatchLineError] | None = None
        if batch.status in ("in_progress", "validating"):
            if isinstance(self.store, LeasedLines):  # (waiting, too, while other replicas run lines)
                final, errors = await self._run_leased_lines(batch, self.store)
            else:
                final, errors = await self._run_lines(batch)
            if final == "waiting":
                return False
        elif batch.status == "cancelling":
            final = "cancelled"
        else:  # finalizing when the last server stopped: the end it had decided
            final = str(batch.data.get("final") or "completed")
        if final == "cancelled" and isinstance(self.store, LeasedLines):
            held: int = await asyncio.to_thread(self.store.leased_lines, batch.id)
            if held:  # other replicas finish the lines they hold first; a later pass ends it
                return False
        return await self._finalize(batch.id, final, errors)

    async def _quota_hold(self, batch: StoredBatch, expires_at: float) -> tuple[str | None, Exhausted | None]:
        """Whether the owner's pages quota lets the batch's next line start: (None, None) yes;
        ("waiting", over) it is used up and resets before the batch expires; ("quota_exceeded",
        over) it resets only after. A cheap look (`UsageRecorder.pages_used`)."""
        if self.quotas is None:
            return None, None
        over = await self.quotas.exhausted(batch.owner)
        if over is None:
            self._quota_noted.discard(batch.id)
            return None, None
        if time.time() + over.wait_s < expires_at:
            if batch.id not in self._quota_noted:
                self._quota_noted.add(batch.id)
                logger.info("batch %s waits: %s", batch.id, over.message(self.quotas.label(batch.owner)))
            return "waiting", over
        return "quota_exceeded", over

    def _refuse_over_quota(self, batch: StoredBatch, line: PendingLine, over: Exhausted, run: _Run) -> None:
        """A line whose owner's quota resets only after the batch's completion window: not
        run, recorded as failed (`quota_exceeded`)."""
        assert self.quotas is not None
        result = BatchOutputLine(
            id=f"batch_req_{uuid.uuid4().hex[:24]}", custom_id=line.custom_id, response=None,
            error=BatchLineError(code="quota_exceeded", message=(
                f"{over.message(self.quotas.label(batch.owner))}, after the batch's completion "
                "window ends; this request was not run")))
        self._record(batch, line, 429, result, run)

    async def _stop_before_next(self, batch: StoredBatch, expires_at: float,
                                run: _Run) -> tuple[str | None, Exhausted | None]:
        """Looked at before each line starts (both runners): the outcome that ends this run
        (cancelled through this process, or through any within `STATUS_CHECK_S`; ended by
        another replica; expired; waiting for the owner's pages quota to reset), else None,
        with the owner's quota when it is used up past the window (the line is refused)."""
        if batch.id in self._cancelled:
            return "cancelled", None
        if time.monotonic() - run.status_checked > STATUS_CHECK_S:
            run.status_checked = time.monotonic()
            status = (await asyncio.to_thread(self.store.get_batch, batch.id)).status
            if status == "cancelling":
                return "cancelled", None
            if status not in ("in_progress", "validating"):  # another replica ended it
                return "waiting", None
        if time.time() >= expires_at:
            return "expired", None
        held, over = await self._quota_hold(batch, expires_at)
        if held == "waiting":
            return "waiting", None
        return None, over if held == "quota_exceeded" else None

    async def _run_lines(self, batch: StoredBatch) -> tuple[str, builtins.list[BatchLineError] | None]:
        """(final status, errors): the batch's lines run until done, cancelled or expired; its
        input gone, or the quota full, fail it with what ran kept; a storage error raises.
        ("waiting", None) when its owner's pages quota is used up and resets before the batch
        expires: the lines not started stay pending, for a later pass."""
        expires_at = batch.data.get("expires_at") or float("inf")
        left = batch.completed + batch.failed < batch.total
        if left and time.time() < expires_at and (await self._quota_hold(batch, expires_at))[0] == "waiting":
            return "waiting", None
        pending = await asyncio.to_thread(self.store.pending_lines, batch.id)
        running: set[asyncio.Task[None]] = set()
        run = _Run()
        outcome = "completed"
        try:
            for start in range(0, len(pending), READ_CHUNK):
                chunk = pending[start:start + READ_CHUNK]
                try:
                    bodies = await asyncio.to_thread(self._read_bodies, batch, chunk)
                except FileNotFoundError:
                    outcome = "input_missing"
                    break
                for line, body in zip(chunk, bodies, strict=True):
                    while len(running) >= self.lanes:
                        _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    if run.stopped:
                        break
                    stop, over = await self._stop_before_next(batch, expires_at, run)
                    if stop is not None:
                        outcome = stop
                        break
                    if over is not None:
                        self._refuse_over_quota(batch, line, over, run)
                        continue
                    running.add(asyncio.create_task(self._line(batch, line, body, run)))
                if outcome != "completed" or run.stopped:
                    break
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise
        except Exception:
            if running:  # no line of this run may still be going when it is tried again
                await asyncio.wait(running)
            raise
        if running:
            await asyncio.wait(running)
        if run.error is not None:
            raise run.error
        if run.quota is not None or outcome == "input_missing":
            return await self._stopped(batch, run)
        if outcome == "completed" and (await asyncio.to_thread(self.store.get_batch, batch.id)).status == "cancelling":
            outcome = "cancelled"
        return outcome, None

    async def _stopped(self, batch: StoredBatch, run: _Run) -> tuple[str, builtins.list[BatchLineError]]:
        """A batch stopped by a full quota (`run.quota`) or its input gone: failed, with what ran."""
        now = await asyncio.to_thread(self.store.get_batch, batch.id)
        ran = f"{now.completed + now.failed} of {now.total} requests had run"
        if run.quota is not None:
            error = BatchLineError(code="storage_quota_exceeded", message=(
                f"the storage quota ({self.settings.storage.quota_bytes} bytes) has no room for "
                f"more answers; the batch stopped ({ran}: their answers are in its output and "
                "error files)"))
        else:
            error = BatchLineError(code="input_file_missing", param="input_file_id", message=(
                f"the input file {batch.data['input_file_id']} is gone from the store; the "
                f"batch stopped ({ran}: their answers are in its output and error files)"))
        logger.warning("batch %s failed: %s", batch.id, error.message)
        return "failed", [error]

    async def _run_leased_lines(self, batch: StoredBatch, leases: LeasedLines
                                ) -> tuple[str, builtins.list[BatchLineError] | None]:
        """`_run_lines` for replicas sharing the batch (a PostgreSQL store): lines claimed as
        lanes free up, their leases renewed while they run, those claimed and not run given
        back at the end. ("waiting", None) while other replicas still run lines of it (or
        its owner's pages quota is used up): a later pass looks again."""
        expires_at = batch.data.get("expires_at") or float("inf")
        running: set[asyncio.Task[None]] = set()
        run = _Run()
        outcome = "completed"
        heartbeat = asyncio.create_task(self._renew_leases(batch.id, leases))
        try:
            while not run.stopped:
                while len(running) >= self.lanes:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                if run.stopped:
                    break
                stop, over = await self._stop_before_next(batch, expires_at, run)
                if stop is not None:
                    outcome = stop
                    break
                claimed = await asyncio.to_thread(leases.claim_lines, batch.id, self.lanes - len(running))
                if not claimed:
                    break
                if over is not None:
                    for line in claimed:
                        await asyncio.to_thread(self._refuse_over_quota, batch, line, over, run)
                    continue
                try:
                    bodies = await asyncio.to_thread(self._read_bodies, batch, claimed)
                except FileNotFoundError:
                    outcome = "input_missing"
                    break
                for line, body in zip(claimed, bodies, strict=True):
                    running.add(asyncio.create_task(self._line(batch, line, body, run)))
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise
        finally:  # (after an error too: no line of this run may still go when it is tried again)
            if running:
                await asyncio.wait(running)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):  # claimed, not run: free for the others now
                await asyncio.to_thread(leases.release_leases, batch.id)
        if run.error is not None:
            raise run.error
        if run.quota is not None or outcome == "input_missing":
            return await self._stopped(batch, run)
        if outcome == "completed":
            if await asyncio.to_thread(leases.unfinished_lines, batch.id):
                return "waiting", None  # other replicas hold the rest (or will, once dead ones' leases end)
            if (await asyncio.to_thread(self.store.get_batch, batch.id)).status == "cancelling":
                outcome = "cancelled"
        return outcome, None

    async def _renew_leases(self, batch_id: str, leases: LeasedLines) -> None:
        """Keep this replica's leases on the batch's lines while they run."""
        every = self.settings.storage.lease_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(leases.renew_leases, batch_id)
            except Exception:  # noqa: BLE001 - the next beat tries again; a lost lease costs a rerun
                logger.warning("batch %s: renewing the leases of its lines failed", batch_id, exc_info=True)

    def _read_bodies(self, batch: StoredBatch,
                     lines: builtins.list[PendingLine]) -> builtins.list[dict[str, Any] | None]:
        """Each line's body (None for a line that no longer reads as one); FileNotFoundError
        when the input file is gone."""
        raws = self.store.read_ranges(batch.data["input_file_id"],
                                      [(line.offset, line.length) for line in lines])
        return [_body_of(raw) for raw in raws]

    async def _line(self, batch: StoredBatch, line: PendingLine, body: dict[str, Any] | None,
                    run: _Run) -> None:
        if body is None:  # validated at creation, unreadable now: this line fails, alone
            result = BatchOutputLine(
                id=f"batch_req_{uuid.uuid4().hex[:24]}", custom_id=line.custom_id, response=None,
                error=BatchLineError(code="invalid_line", message="this request's line of the "
                                     "input file could not be read when it was to run (the file "
                                     "changed after the batch was created)"))
            await self._record_line(batch, line, 400, result, run)
            return
        retries = self.settings.batches.line_retries
        time_left = batch.data.get("expires_at", 0) - time.time()
        # the line's usage, counted for the batch's owner; its documents under the batch limits
        order = (batch.data.get("created_at", 0), line.idx)
        with metering() as meter, batch_line_scope(self.settings, time_left, order):
            for attempt in range(retries + 1):
                status_code, answer = await execute_line(self.service, batch.data["endpoint"], body,
                                                         batch.owner)
                if status_code not in RETRYABLE or attempt == retries:
                    break
                await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt))
        self.service.usage.record(meter, batch.owner, BATCH_ROUTE)
        result = BatchOutputLine(
            id=f"batch_req_{uuid.uuid4().hex[:24]}", custom_id=line.custom_id,
            response=BatchLineResponse(status_code=status_code, request_id=uuid.uuid4().hex,
                                       body=answer))
        await self._record_line(batch, line, status_code, result, run)

    async def _record_line(self, batch: StoredBatch, line: PendingLine, status_code: int,
                           result: BatchOutputLine, run: _Run) -> None:
        """`_record`: on the event loop for SQLite (a short WAL commit), in a thread for a
        database across the network."""
        if isinstance(self.store, LeasedLines):
            await asyncio.to_thread(self._record, batch, line, status_code, result, run)
        else:
            self._record(batch, line, status_code, result, run)

    def _record(self, batch: StoredBatch, line: PendingLine, status_code: int,
                result: BatchOutputLine, run: _Run) -> None:
        """Store a line's answer; a full quota or a storage error stops the batch's run."""
        try:
            # A short WAL commit (no fsync): cheaper on the event loop than a thread hop per line.
            recorded = self.store.finish_line(batch.id, line.idx, status_code,
                                              result.model_dump(mode="json"))
        except InsufficientStorage as exc:
            run.quota = run.quota or exc
            return
        except Exception as exc:  # noqa: BLE001 - the line stays pending; the run is retried
            run.error = run.error or exc
            return
        if recorded:
            self.metrics.batch_lines.labels("completed" if status_code < 300 else "failed").inc()
            self.metrics.batch_queue.dec()

    async def _finalize(self, batch_id: str, final: str,
                        errors: builtins.list[BatchLineError] | None = None) -> bool:
        """Output and error files from the stored lines, and the final status, within the
        quota (idempotent: safe to redo after a crash); False when another replica is writing
        them (a shared store)."""
        now = int(time.time())
        noted = BatchErrors(data=errors).model_dump() if errors else None
        decided: dict[str, Any] = {"finalizing_at": now, "final": final}
        if noted:
            decided["errors"] = noted
        stored = await asyncio.to_thread(
            self.store.update_batch, batch_id, "finalizing", only_from=("in_progress", "validating"),
            **decided)
        if (isinstance(self.store, LeasedLines) and final != "failed" and stored.status == "finalizing"
                and stored.data.get("final")):
            final = str(stored.data["final"])  # decided first by another replica: that end holds
        if noted is None and final == "failed":  # decided before a restart: kept with the batch
            noted = stored.data.get("errors")
        with tempfile.TemporaryDirectory(prefix="openai-ocr-batch-") as folder:
            files = await asyncio.to_thread(self._write_results, batch_id, Path(folder), final == "expired")
            try:
                done = await self._publish(batch_id, final, now, files, noted)
            except InsufficientStorage:
                if not files.unrun:
                    raise
                # the answers fit (they were counted), the list of lines not run does not
                note = BatchLineError(code="storage_quota_exceeded", message=(
                    f"{files.unrun} requests did not run before the completion window closed; the "
                    "storage quota has no room to list them in the error file"))
                noted = BatchErrors(data=[*(BatchErrors.model_validate(noted).data if noted else []),
                                          note]).model_dump()
                done = await self._publish(batch_id, final, now, files.without_unrun(), noted)
        if not done:  # another replica holds the batch's finalization
            return False
        self._cancelled.discard(batch_id)
        logger.info("batch %s %s: %d ok, %d failed", batch_id, final, files.ok, files.failed)
        return True

    def _write_results(self, batch_id: str, folder: Path, expired: bool) -> _ResultFiles:
        """The output and error files, written from the stored answers a page at a time (a
        batch's answers are never all in memory); an expired batch's lines that did not run
        are appended to the errors."""
        files = _ResultFiles(folder / "output.jsonl", folder / "errors.jsonl")
        with files.output.open("wb") as output, files.errors.open("wb") as errors:
            for status_code, text in self.store.finished_results(batch_id):
                ok = 200 <= status_code < 300
                (output if ok else errors).write(text.encode() + b"\n")
                files.ok, files.failed = files.ok + ok, files.failed + (not ok)
            files.answered_errors = errors.tell()
            for line in self.store.pending_lines(batch_id) if expired else []:
                errors.write(BatchOutputLine(
                    id=f"batch_req_{uuid.uuid4().hex[:24]}", custom_id=line.custom_id, response=None,
                    error=BatchLineError(code="batch_expired", message="this request could not be "
                                         "executed before the completion window expired"),
                ).model_dump_json().encode() + b"\n")
                files.unrun += 1
        return files

    async def _publish(self, batch_id: str, final: str, now: int, files: _ResultFiles,
                       noted: dict[str, Any] | None) -> bool:
        """Write the files and the final status; False when another replica does it."""
        fields: dict[str, Any] = {f"{final}_at": now, "errors": noted}
        outputs: builtins.list[tuple[str, str, bytes | Path]] = []
        for kind, path, lines, key in (("o", files.output, files.ok, "output_file_id"),
                                       ("e", files.errors, files.failed + files.unrun, "error_file_id")):
            if lines:
                file_id = _result_file_id(batch_id, kind)
                outputs.append((file_id, f"{batch_id}_{key[:-8]}.jsonl", path))
                fields[key] = file_id
        stored = await asyncio.to_thread(self.store.publish_batch, batch_id, final, outputs, **fields)
        return stored.status == final


@dataclass
class _ResultFiles:
    """A batch's output and error files on local disk, before they are published."""

    output: Path
    errors: Path
    ok: int = 0
    failed: int = 0
    #: the lines of an expired batch that did not run, after the answers' errors
    unrun: int = 0
    answered_errors: int = 0
    """Bytes of the error file that are answers (the unrun lines follow)."""

    def without_unrun(self) -> _ResultFiles:
        """The same files, the error file cut back to the answers' errors."""
        os.truncate(self.errors, self.answered_errors)
        return dataclasses.replace(self, unrun=0)


class _Run:
    """What the lines of one run learnt that stops it: the quota is full, or storing failed."""

    def __init__(self) -> None:
        self.quota: InsufficientStorage | None = None
        self.error: Exception | None = None
        #: when the batch's status was last read (time.monotonic), to see a cancel
        self.status_checked = 0.0

    @property
    def stopped(self) -> bool:
        return self.quota is not None or self.error is not None


def _body_of(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)["body"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return body if isinstance(body, dict) else None
