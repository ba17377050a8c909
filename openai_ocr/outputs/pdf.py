"""Searchable PDF: the pages as they are, with the OCR text as an invisible text layer.

A PDF input keeps its pages as they are: their content streams are not touched (not
re-rasterised, not re-encoded), and each gets one more content stream that draws a Form
XObject holding the text layer. Images and TIFF frames become one page each at their own
resolution (img2pdf: JPEG, PNG and CCITT G4 embedded as they are compressed, never decoded
to pixels where it can be helped; 96 dpi where the image does not say); those documents are
made PDF/A-2b (sRGB output intent, XMP identification). A PDF input keeps its own metadata
and makes no PDF/A claim we cannot check.

The text layer is OCRmyPDF's renderer (`ocrmypdf.fpdf_renderer`, fpdf2 underneath): each
word drawn invisibly (text render mode 3) where the layout placed it, stretched to its box
(`Tz`), one `BT` block per line (poppler's tools keep the spacing), in an embedded font
subset (Noto Sans, a glyphless fallback for scripts it lacks) with a ToUnicode map, so copy
and search give the OCR text. Pages are rendered in chunks and grafted one by one; only
the text layers and the document's object tree are in memory, never a rendered page.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai_ocr.outputs.layout import PageLayout

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/pdf"
CHUNK_PAGES = 32
"""Text layers rendered together (one font subset each); a chunk is grafted, then dropped."""
DEFAULT_IMAGE_DPI = 96.0
"""Resolution of an image that does not state its own (img2pdf's default)."""
MIN_DPI, MAX_DPI = 50.0, 2400.0


def available() -> str | None:
    """None when PDFs can be written here, else what to install."""
    import importlib.util

    missing = [m for m in ("pikepdf", "ocrmypdf", "img2pdf") if importlib.util.find_spec(m) is None]
    return None if not missing else f"pip install 'openai-ocr[pdf]' ({', '.join(missing)} missing)"


@dataclass(frozen=True)
class View:
    """How a page is shown: its crop box in user space and its rotation (clockwise)."""

    x0: float
    y0: float
    width: float
    height: float
    rotate: int

    @property
    def shown(self) -> tuple[float, float]:
        """Width and height as displayed (rotated), in points."""
        return (self.height, self.width) if self.rotate in (90, 270) else (self.width, self.height)

    def matrix(self, text_width: float, text_height: float) -> tuple[float, ...]:
        """The `cm` that maps a text page of `text_width` x `text_height` points, laid out as
        the page is displayed, onto the page's user space."""
        shown_w, shown_h = self.shown
        sx, sy = shown_w / text_width, shown_h / text_height
        w, h, x0, y0 = self.width, self.height, self.x0, self.y0
        a, b, c, d, e, f = {
            0: (1, 0, 0, 1, x0, y0),
            90: (0, 1, -1, 0, x0 + w, y0),
            180: (-1, 0, 0, -1, x0 + w, y0 + h),
            270: (0, -1, 1, 0, x0, y0 + h),
        }[self.rotate]
        return (a * sx, b * sx, c * sy, d * sy, e, f)


def _normal(box: list[float]) -> tuple[float, float, float, float]:
    return min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])


def page_view(page: Any) -> View:
    """The view of a pikepdf page as pdfium renders it: the crop box inside the media box."""
    mx0, my0, mx1, my1 = _normal([float(v) for v in page.mediabox])
    cx0, cy0, cx1, cy1 = _normal([float(v) for v in page.obj.get("/CropBox", page.mediabox)])
    x0, y0, x1, y1 = max(mx0, cx0), max(my0, cy0), min(mx1, cx1), min(my1, cy1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        x0, y0, x1, y1 = mx0, my0, mx1, my1
    rotate = int(page.obj.get("/Rotate", 0)) % 360
    rotate = (round(rotate / 90) * 90) % 360
    return View(x0, y0, x1 - x0, y1 - y0, rotate)


# -- base documents ------------------------------------------------------------------------

def _layout(width_px: int, height_px: int, ndpi: tuple[float, float]) -> Any:
    """img2pdf's page layout at the image's resolution; one it cannot mean (below 50 or above
    2400 dpi: a TIFF's unit-less 1, a JFIF aspect ratio) counts as unstated."""
    import img2pdf

    dpi = tuple(d if MIN_DPI <= d <= MAX_DPI else DEFAULT_IMAGE_DPI for d in ndpi)
    return img2pdf.default_layout_fun(width_px, height_px, dpi)


def _image_pdf(images: list[bytes]) -> bytes:
    import img2pdf

    return bytes(img2pdf.convert(images, rotation=img2pdf.Rotation.ifvalid, layout_fun=_layout))


def _normalised_png(image: Any) -> bytes:
    """An image as img2pdf takes every image: upright, 1-bit, gray or RGB, no alpha."""
    from PIL import Image, ImageOps

    upright = ImageOps.exif_transpose(image)
    if upright.mode not in ("1", "L", "RGB"):
        if "A" in upright.getbands() or (upright.mode == "P" and "transparency" in upright.info):
            rgba = upright.convert("RGBA")
            flat = Image.new("RGB", rgba.size, "white")
            flat.paste(rgba, mask=rgba.getchannel("A"))
            upright = flat
        else:
            upright = upright.convert("L" if upright.mode in ("I", "I;16", "F", "LA") else "RGB")
    out = io.BytesIO()
    dpi = image.info.get("dpi")
    upright.save(out, format="PNG", dpi=dpi if dpi else (DEFAULT_IMAGE_DPI, DEFAULT_IMAGE_DPI))
    return out.getvalue()


def _frames(data: bytes, numbers: list[int]) -> Iterator[bytes]:
    """The selected frames of an image (1-based), each as a normalised PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        for number in numbers:
            image.seek(number - 1)
            yield _normalised_png(image)


def image_document(data: bytes, kind: str, numbers: list[int]) -> bytes:
    """One page per selected image or frame, at the image's resolution: img2pdf on the input as
    it is (no pixel decoded) where it takes it and every frame is kept, else on each frame
    made upright gray or RGB (alpha flattened on white, CMYK made RGB for PDF/A)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        frames = int(getattr(image, "n_frames", 1))
        direct = (image.mode in ("1", "L", "RGB", "P") and image.format in ("JPEG", "PNG", "TIFF")
                  and "transparency" not in image.info and numbers == list(range(1, frames + 1)))
    if direct:
        try:
            return _image_pdf([data])
        except Exception as exc:  # noqa: BLE001 - any image img2pdf refuses is normalised instead
            logger.info("img2pdf took the image as it is not (%s); normalising its frames", exc)
    return _image_pdf(list(_frames(data, numbers)))


# -- the text layer ------------------------------------------------------------------------

def _renderer_class() -> Any:
    from ocrmypdf.fpdf_renderer import Fpdf2PdfRenderer

    class LayerRenderer(Fpdf2PdfRenderer):
        """OCRmyPDF's renderer, keeping every line: its check against misread rotated text
        would drop a line whose box is narrow for its text, and the layout's boxes are not a
        rotated-text reader's."""

        def _check_aspect_ratio_plausible(self, *args: Any, **kwargs: Any) -> bool:
            return True

    return LayerRenderer


def ocr_tree(page: PageLayout, dpi: float) -> Any:
    """The page as OCRmyPDF's OcrElement tree (pixel boxes, top-left origin)."""
    from ocrmypdf.models.ocr_element import BoundingBox, OcrClass, OcrElement

    def box(b: tuple[float, float, float, float]) -> BoundingBox:
        return BoundingBox(b[0], b[1], max(b[2], b[0]), max(b[3], b[1]))

    paragraphs = []
    for block in page.blocks:
        lines = [OcrElement(ocr_class=OcrClass.LINE, bbox=box(line.box), children=[
            OcrElement(ocr_class=OcrClass.WORD, bbox=box(w.box), text=w.text, confidence=w.confidence)
            for w in line.words]) for line in block.lines if line.words]
        if lines:
            paragraphs.append(OcrElement(ocr_class=OcrClass.PARAGRAPH, bbox=box(block.box), children=lines))
    return OcrElement(ocr_class=OcrClass.PAGE, bbox=BoundingBox(0, 0, page.width, page.height),
                      children=paragraphs, dpi=dpi)


def text_layers(pages: list[tuple[PageLayout, float]]) -> bytes:
    """One text-only page per layout (invisible text), rendered at the given horizontal dpi so
    each text page is as wide in points as the page it goes on."""
    import ocrmypdf
    from fpdf import FPDF
    from fpdf.enums import TextMode
    from ocrmypdf.font import MultiFontManager

    fonts = MultiFontManager(Path(ocrmypdf.__file__).parent / "data")
    renderer = _renderer_class()
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(auto=False)
    pdf.set_text_shaping(True)
    pdf.c_margin = 0
    pdf.text_mode = TextMode.INVISIBLE
    registered: dict[str, str] = {}
    for layout, dpi in pages:
        page = renderer(page=ocr_tree(layout, dpi), dpi=dpi, multi_font_manager=fonts, invisible_text=True)
        page._registered_fonts = registered  # one font subset for the chunk
        page.render_to_pdf(pdf)
    return bytes(pdf.output())


def graft(pdf: Any, page: Any, text_page: Any, view: View) -> None:
    """Draw `text_page` (a text-only page) on `page`, over its content: the page's content
    streams stay as they are, wrapped in q/Q, and one more draws the text as a Form XObject."""
    import pikepdf
    from pikepdf import Dictionary, Name

    width, height = (float(v) for v in text_page.mediabox[2:])
    resources = Dictionary()
    fonts = text_page.obj.get("/Resources", Dictionary()).get("/Font")
    if fonts is not None:
        resources.Font = Dictionary({str(k): pdf.copy_foreign(v if v.is_indirect else pdf.make_indirect(v))
                                     for k, v in fonts.items()})
    layer = pikepdf.Stream(pdf, text_page.Contents.read_bytes() if not isinstance(text_page.Contents, pikepdf.Array)
                           else b"\n".join(s.read_bytes() for s in text_page.Contents))
    layer.Type, layer.Subtype, layer.FormType = Name.XObject, Name.Form, 1
    layer.BBox = [0, 0, width, height]
    layer.Resources = resources
    name = page.add_resource(layer, Name.XObject, prefix="OCR")
    matrix = " ".join(f"{v:.6f}".rstrip("0").rstrip(".") or "0" for v in view.matrix(width, height))
    page.contents_add(b"q\n", prepend=True)
    page.contents_add(f"\nQ\nq {matrix} cm {name} Do Q\n".encode())


# -- documents -------------------------------------------------------------------------------

def _select(pdf: Any, numbers: list[int]) -> None:
    """Keep the selected pages (1-based), in the order given."""
    if numbers == list(range(1, len(pdf.pages) + 1)):
        return
    kept = [pdf.pages[n - 1] for n in numbers]
    for index in reversed(range(len(pdf.pages))):
        del pdf.pages[index]
    pdf.pages.extend(kept)


def mark_pdfa(pdf: Any, *, title: str, creator: str) -> None:
    """PDF/A-2b identification: the sRGB output intent, XMP `pdfaid` part 2 conformance B, and
    the document information kept in step with the XMP."""
    import ocrmypdf
    import pikepdf
    from pikepdf import Dictionary, Name

    icc = (Path(ocrmypdf.__file__).parent / "data" / "sRGB.icc").read_bytes()
    profile = pikepdf.Stream(pdf, icc)
    profile.N = 3
    pdf.Root.OutputIntents = pdf.make_indirect(pikepdf.Array([pdf.make_indirect(Dictionary(
        Type=Name.OutputIntent, S=Name.GTS_PDFA1, OutputConditionIdentifier=pikepdf.String("sRGB"),
        Info=pikepdf.String("sRGB IEC61966-2.1"), DestOutputProfile=profile))]))
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta.load_from_docinfo(pdf.docinfo)  # the dates img2pdf wrote, the same in both places
        meta["pdfaid:part"] = "2"
        meta["pdfaid:conformance"] = "B"
        meta["dc:title"] = title
        meta["xmp:CreatorTool"] = creator
        meta["pdf:Producer"] = creator


def write_pdf(pages: Iterable[PageLayout], numbers: list[int], out: Path, *, source: bytes, kind: str,
              title: str, creator: str) -> dict[str, Any]:
    """Write the searchable PDF of `pages` (the layouts of the pages `numbers` of `source`,
    in that order, made as they are needed: a chunk at a time) to `out`; returns what was
    made (`pdfa`: the PDF/A part claimed, or None)."""
    import pikepdf

    if kind == "pdf":
        pdf = pikepdf.open(io.BytesIO(source))
        _select(pdf, numbers)
    else:
        pdf = pikepdf.open(io.BytesIO(image_document(source, kind, numbers)))
    opened: list[Any] = []
    layouts = iter(pages)
    try:
        for start in range(0, len(numbers), CHUNK_PAGES):
            chunk = [(pdf.pages[n], next(layouts)) for n in range(start, min(start + CHUNK_PAGES, len(numbers)))]
            views = [page_view(page) for page, _ in chunk]
            rendered = text_layers([(layout, layout.width * 72.0 / view.shown[0])
                                    for (_, layout), view in zip(chunk, views, strict=True)])
            texts = pikepdf.open(io.BytesIO(rendered))
            opened.append(texts)  # fonts copied from it are read when the output is written
            for (page, _), text_page, view in zip(chunk, texts.pages, views, strict=True):
                graft(pdf, page, text_page, view)
        pdfa = None
        if kind != "pdf":
            mark_pdfa(pdf, title=title, creator=creator)
            pdfa = "2b"
        pdf.save(out, stream_decode_level=pikepdf.StreamDecodeLevel.none if kind == "pdf" else None,
                 min_version="1.7" if pdfa else "")
    finally:
        for texts in opened:
            texts.close()
        pdf.close()
    return {"pages": len(numbers), "pdfa": pdfa}

