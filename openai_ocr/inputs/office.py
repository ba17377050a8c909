"""Office documents (DOCX, PPTX, XLSX, ODT, ODP, ODS, RTF) in: converted to PDF by LibreOffice,
headless, then read like any PDF.

Runs in the decoder processes (`openai_ocr.inputs.pool`), under the request's time: each
conversion gets a private temporary folder and LibreOffice profile (concurrent runs would
collide on a shared one), exports at most the pages a request may read (`PageRange`), and is
started under coreutils' `timeout`, which ends LibreOffice's whole process group when the time
is up or when the worker that started it dies (its parent-death signal), so a killed request
leaves no office process behind. Without LibreOffice such a file is a 415 that names what to
install.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from openai_ocr.errors import BadRequest, EngineTimeout, PayloadTooLarge, UnsupportedMediaType
from openai_ocr.inputs.documents import DocumentInfo, probe_document
from openai_ocr.inputs.page_ranges import PageSpec, parse_pages
from openai_ocr.inputs.pdf import PdfPages

PACKAGES = {"writer": "libreoffice-writer-nogui", "impress": "libreoffice-impress-nogui",
            "calc": "libreoffice-calc-nogui"}
"""The Debian package of each LibreOffice application."""
PROGRAMS = ("soffice", "libreoffice", "/usr/lib/libreoffice/program/soffice",
            "/opt/libreoffice/program/soffice", "/Applications/LibreOffice.app/Contents/MacOS/soffice")
ODF = {b"application/vnd.oasis.opendocument.text": ("writer", "odt"),
       b"application/vnd.oasis.opendocument.presentation": ("impress", "odp"),
       b"application/vnd.oasis.opendocument.spreadsheet": ("calc", "ods")}
OOXML = (("word/", "writer", "docx"), ("ppt/", "impress", "pptx"), ("xl/", "calc", "xlsx"))
SUFFIXES = (".docx", ".pptx", ".xlsx", ".odt", ".odp", ".ods", ".rtf")
"""The file name endings of the formats read (clients pick files by them)."""
MAX_ENTRIES = 100_000
"""A ZIP with more members is no Office document we read (its directory alone is a bomb)."""
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class OfficeFormat:
    app: str
    """LibreOffice's application: writer, impress or calc."""
    ext: str
    """docx, pptx, xlsx, odt, odp, ods or rtf."""

    @property
    def name(self) -> str:
        return self.ext.upper()


def maybe_office(data: bytes) -> bool:
    """Whether the bytes may be an Office document (a ZIP, or RTF): checked in a worker."""
    return data[:4] == b"PK\x03\x04" or data.lstrip()[:5] == b"{\\rtf"


def office_format(data: bytes) -> OfficeFormat | None:
    """The Office format of the bytes, from the container: RTF's signature, an ODF package's
    `mimetype`, an OOXML package's `[Content_Types].xml` and part folders; None otherwise."""
    if data.lstrip()[:5] == b"{\\rtf":
        return OfficeFormat("writer", "rtf")
    if data[:4] != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            entries = package.infolist()
            if len(entries) > MAX_ENTRIES:
                return None
            names = [e.filename for e in entries]
            if "mimetype" in names:
                with package.open("mimetype") as handle:
                    found = ODF.get(handle.read(200).strip())
                if found:
                    return OfficeFormat(*found)
            if "[Content_Types].xml" in names:
                for folder, app, ext in OOXML:
                    if any(n.startswith(folder) for n in names):
                        return OfficeFormat(app, ext)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        return None
    return None


def find_libreoffice() -> str | None:
    for name in PROGRAMS:
        found = shutil.which(name)
        if found:
            return found
    return None


LIBRARIES = {"writer": "libswlo.so", "impress": "libsdlo.so", "calc": "libsclo.so"}
"""The library of each application in LibreOffice's program folder (Linux builds)."""


def component_missing(program: str, app: str) -> bool:
    """Whether LibreOffice is installed without the application a format needs (Debian
    installs writer, impress and calc as packages of their own)."""
    folder = Path(os.path.realpath(program)).parent
    known = [folder / name for name in LIBRARIES.values()]
    return any(p.exists() for p in known) and not (folder / LIBRARIES[app]).exists()


def install_hint(fmt: OfficeFormat) -> str:
    return (f"{fmt.name} documents are converted to PDF by LibreOffice, which is not installed on "
            f"this server: apt-get install {PACKAGES[fmt.app]} (Debian/Ubuntu; `make office` installs "
            "the writer, impress and calc packages), or LibreOffice from libreoffice.org")


def last_page_needed(spec: PageSpec, max_pages: int) -> int:
    """The last page a selection can reach on a document of any length, so the export stops
    there: the highest page it names, or `max_pages` on from an open range ("5-", all)."""
    if isinstance(spec, list):
        return max(spec, default=max_pages)
    if spec is None or spec.strip().lower() in ("", "all"):
        return max_pages
    last = 0
    for part in spec.split(","):
        numbers = [int(n) for n in re.findall(r"\d+", part)]
        if not numbers:
            continue
        last = max(last, numbers[0] + max_pages - 1 if re.search(r"-\s*$", part) else max(numbers))
    return max(last, 1)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The child (coreutils' timeout) gets SIGTERM when the worker that started it dies, and
    passes it on to LibreOffice's process group."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# coreutils' timeout answers 124 when it stopped LibreOffice with SIGTERM; when LibreOffice
# ignored that, `--kill-after` sends SIGKILL to the whole group, timeout included.
_STOPPED_AT_ITS_TIME = (124, -signal.SIGKILL, 128 + signal.SIGKILL)


def convert_to_pdf(data: bytes, fmt: OfficeFormat, *, last_page: int, time_left: float,
                   param: str = "file") -> bytes:
    """The document as PDF (its pages 1..`last_page`), made by LibreOffice in a private folder."""
    program = find_libreoffice()
    if program is None:
        raise UnsupportedMediaType(install_hint(fmt), param=param)
    seconds = max(1, int(time_left))
    with tempfile.TemporaryDirectory(prefix="openai-ocr-office-") as work:
        folder = Path(work)
        source = folder / f"document.{fmt.ext}"
        source.write_bytes(data)
        export = (f'pdf:{fmt.app}_pdf_Export:{{"PageRange":{{"type":"string","value":"1-{last_page}"}}}}')
        command = [program, f"-env:UserInstallation={(folder / 'profile').as_uri()}", "--headless",
                   "--norestore", "--nolockcheck", "--nodefault", "--convert-to", export,
                   "--outdir", str(folder / "out"), str(source)]
        timeout = shutil.which("timeout")
        if timeout:  # the group is ended at the time, or when this worker dies
            command = [timeout, "--kill-after=2", str(seconds), *command]
        env = {**os.environ, "HOME": work, "SAL_USE_VCLPLUGIN": "svp"}
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                                  timeout=seconds + 5, preexec_fn=_die_with_parent if timeout else None,
                                  start_new_session=not timeout, check=False)
        except subprocess.TimeoutExpired:
            raise EngineTimeout(f"converting the {fmt.name} document took longer than the request's "
                                "time limit") from None
        if done.returncode in _STOPPED_AT_ITS_TIME:
            raise EngineTimeout(f"converting the {fmt.name} document took longer than the request's "
                                "time limit; LibreOffice was stopped")
        result = folder / "out" / "document.pdf"
        if not result.is_file():
            if component_missing(program, fmt.app):
                raise UnsupportedMediaType(install_hint(fmt).replace("which is not installed",
                                                                     "whose part for them is not installed"),
                                           param=param)
            said = " ".join((done.stderr or done.stdout).decode(errors="replace").split())
            raise BadRequest(f"the {fmt.name} document could not be converted to PDF (LibreOffice: "
                             f"{said[:200] or f'exit status {done.returncode}'})", param=param)
        return result.read_bytes()


def probe_office(data: bytes, *, pages: PageSpec, dpi: float, max_pages: int, max_pixels: int,
                 max_bytes: int, param: str = "file", max_aspect_ratio: float = 0.0,
                 time_left: float = 600.0) -> tuple[bytes, DocumentInfo]:
    """An Office document as (its PDF, what `probe_document` finds in it); anything else as it
    came, probed as it is."""
    fmt = office_format(data)
    if fmt is None:
        return data, probe_document(data, pages=pages, dpi=dpi, max_pages=max_pages, max_pixels=max_pixels,
                                    max_bytes=max_bytes, param=param, max_aspect_ratio=max_aspect_ratio)
    last = last_page_needed(pages, max_pages)
    pdf = convert_to_pdf(data, fmt, last_page=last + 1, time_left=time_left, param=param)
    if len(pdf) > max_bytes:
        raise PayloadTooLarge(f"the PDF made from the {fmt.name} document is larger than {max_bytes} bytes",
                              param=param)
    with PdfPages(pdf) as exported:
        count = exported.page_count
    if count > last and last + 1 in parse_pages(pages, count):  # the export was cut short there
        raise PayloadTooLarge(f"the {fmt.name} document has more than {last} pages; at most {max_pages} "
                              "pages per request (select fewer with `pages`)", param="pages")
    return pdf, probe_document(pdf, pages=pages, dpi=dpi, max_pages=max_pages, max_pixels=max_pixels,
                               max_bytes=max_bytes, param=param, max_aspect_ratio=max_aspect_ratio)
