"""Schemas of `POST /v1/ocr`, the Mistral OCR API shape."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class DocumentURLChunk(BaseModel):
    type: Literal["document_url"] = "document_url"
    document_url: str = Field(description="A `data:application/pdf;base64,...` URL.")
    document_name: str | None = None


class ImageURL(BaseModel):
    url: str


class ImageURLChunk(BaseModel):
    type: Literal["image_url"] = "image_url"
    image_url: str | ImageURL = Field(description="A `data:image/...;base64,...` URL.")


class FileChunk(BaseModel):
    type: Literal["file"] = "file"
    file_id: str = Field(description="An image or PDF uploaded to `POST /v1/files`.")


class MistralOCRRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "deepseek-ai/DeepSeek-OCR",
        "document": {"type": "document_url", "document_url": "data:application/pdf;base64,JVBERi0x..."},
        "pages": [0, 1], "include_image_base64": True}]})

    model: str | None = None
    document: Annotated[DocumentURLChunk | ImageURLChunk | FileChunk, Field(discriminator="type")]
    pages: (Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=10_000)]
            | Annotated[str, Field(max_length=1000)] | None) = Field(
        None, description="0-based pages: a list, or a string such as \"0,2-4\".")
    include_image_base64: bool | None = False
    resolution: str | None = Field(None, max_length=100, description="Extra field: the vision "
                                   "resolution mode (tiny, small, base, large, gundam).")
    base_size: int | None = Field(None, description="Extra field: raw global-view size of a mode.")
    image_size: int | None = Field(None, description="Extra field: raw tile size of a mode.")
    crop_mode: bool | None = Field(None, description="Extra field: raw tiling switch of a mode.")


class MistralImage(BaseModel):
    id: str
    top_left_x: int | None
    top_left_y: int | None
    bottom_right_x: int | None
    bottom_right_y: int | None
    image_base64: str | None = None


class MistralDimensions(BaseModel):
    dpi: int
    height: int
    width: int


class MistralPage(BaseModel):
    index: int = Field(description="0-based page index.")
    markdown: str
    images: list[MistralImage]
    dimensions: MistralDimensions | None


class MistralUsage(BaseModel):
    pages_processed: int
    doc_size_bytes: int | None = None


class MistralOCRResponse(BaseModel):
    pages: list[MistralPage]
    model: str
    usage_info: MistralUsage
    resolution: str | None = Field(None, description="Extra field: the resolution mode used.")
