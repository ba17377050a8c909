"""The legacy `/ocr` routes, each translated into a chat-completion call.

Thin HTTP glue in the style of vLLM's api_router: read the request, call OCRService, map the
answer to JSON or SSE. Errors are shaped by OCRRoute.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError, field_validator
from sse_starlette import EventSourceResponse

from openai_ocr.api.dependencies import ApiKeyDep, QuotaDep, ServiceDep
from openai_ocr.api.disconnect import cancel_on_disconnect
from openai_ocr.api.file_answer import ARCHIVAL_RESPONSES, file_response
from openai_ocr.api.http_errors import ERROR_RESPONSES, OCRRoute
from openai_ocr.errors import BadRequest, PayloadTooLarge
from openai_ocr.ocr.models import OCROptions
from openai_ocr.outputs import is_archival
from openai_ocr.protocol.ocr import BatchRequest, BatchResponse, OCRRequest, OCRResponse
from openai_ocr.service.archival import Archiver
from openai_ocr.service.legacy_batch import legacy_batch
from openai_ocr.service.serving import OCRService

router = APIRouter(route_class=OCRRoute, responses=ERROR_RESPONSES, dependencies=[ApiKeyDep, QuotaDep])

SSE_PING_S = 15


class OCRFormOptions(OCROptions):
    """OCROptions from multipart form fields; an empty field counts as not given."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


FileField = Annotated[UploadFile, File(description="A page image (PNG, JPEG, WebP, TIFF, ...), "
                                      "a PDF, or an Office document (DOCX, PPTX, XLSX, ODT, ODP, ODS, "
                                      "RTF; converted by LibreOffice where installed).")]


def _form_options_dependency() -> Callable[..., Any]:
    """A dependency taking every OCROptions field as its own multipart form field.

    Built from the model, so the form and the JSON body never drift apart. Plain `Form()`
    parameters (rather than a form model) work on every FastAPI version vLLM may pin.
    Query parameters are the fallback: the seed server took its options there.
    """
    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    for name, field in OCROptions.model_fields.items():
        annotation = Annotated[field.annotation | None,  # type: ignore[name-defined]  # built at run time
                               Form(description=field.description)]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=annotation))

    async def form_options(request: Request, **fields: Any) -> OCROptions:
        values: dict[str, Any] = {k: v for k, v in request.query_params.items()
                                  if k in OCROptions.model_fields}
        values.update({k: v for k, v in fields.items() if v is not None})
        try:
            return OCRFormOptions.model_validate(values)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None

    form_options.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # read by FastAPI
    return form_options


FormOptions = Annotated[OCROptions, Depends(_form_options_dependency())]


def request_id_of(request: Request) -> str | None:
    """The X-Request-ID of this request (set by the request middleware, where present)."""
    return getattr(request.state, "request_id", None)


async def read_upload(service: OCRService, file: UploadFile) -> bytes:
    limit = service.settings.limits.max_file_bytes
    if file.size is not None and file.size > limit:
        raise PayloadTooLarge(f"file is larger than {limit} bytes", param="file")
    return await file.read(limit + 1)


@router.post("/ocr", response_model=OCRResponse, tags=["OCR"], responses=ARCHIVAL_RESPONSES,
             summary="OCR of a base64 image or PDF (JSON)")
@cancel_on_disconnect
async def ocr(request: Request, body: OCRRequest, service: ServiceDep) -> OCRResponse | Response:
    caller = getattr(request.state, "caller", None)
    if is_archival(body.output):  # the file itself
        return file_response(await Archiver(service.recognizer).read_request(body, caller, request_id_of(request)))
    return await service.recognizer.read_request(body, caller, request_id_of(request))


@router.post("/ocr/file", response_model=OCRResponse, tags=["OCR"], responses=ARCHIVAL_RESPONSES,
             summary="OCR of an uploaded image, PDF or Office document (multipart)")
@cancel_on_disconnect
async def ocr_file(request: Request, file: FileField, options: FormOptions,
                   service: ServiceDep) -> OCRResponse | Response:
    if is_archival(options.output):  # the file itself
        archiver = Archiver(service.recognizer)
        archiver.plan(options)  # a bad option is a 400 before the upload is read
        return file_response(await archiver.read_bytes(await read_upload(service, file), options,
                                                       file.filename, request_id_of(request)))
    return await service.recognizer.read_bytes(await read_upload(service, file), options,
                                               request_id=request_id_of(request))


@router.post(
    "/ocr/stream", tags=["OCR"], summary="Streamed OCR of an uploaded file (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"description": "`data:` events, each a JSON StreamEvent: per page a "
                     "`page` event, `text` deltas and a `page_end` event; then `done` (with "
                     "`finish_reason` and `usage`) or `error`; the stream ends with "
                     "`data: [DONE]`. Streams carry the raw model text; with `output=json` "
                     "each `page_end` event also carries the page's `result` (as in "
                     "`/ocr/file`'s `pages`).",
                     "content": {"text/event-stream": {}}}})
async def ocr_stream(request: Request, file: FileField, options: FormOptions,
                     service: ServiceDep) -> EventSourceResponse:
    if is_archival(options.output):
        raise BadRequest(f"output={options.output} is answered as a file: ask /ocr/file (or /ocr) for it; "
                         "/ocr/stream streams text, markdown or JSON", param="output")
    data = await read_upload(service, file)
    plan = service.recognizer.plan(options)
    document = await service.inputs.open_bytes(data, pages=options.pages, dpi=options.dpi)
    events = await service.streamer.open(document, options, plan, request_id_of(request))

    async def sse() -> Any:
        async for event in events:
            yield {"data": event.model_dump_json(exclude_none=True)}
        yield {"data": "[DONE]"}

    return EventSourceResponse(sse(), ping=SSE_PING_S, sep="\n")


@router.post("/ocr/batch", response_model=BatchResponse, tags=["OCR"],
             summary="OCR of many base64 images, concurrently; one answer per item, in order")
@cancel_on_disconnect
async def ocr_batch(request: Request, body: BatchRequest, service: ServiceDep) -> BatchResponse:
    return await legacy_batch(service.recognizer, body.requests, getattr(request.state, "caller", None))
