"""The `openai-ocr` command line: `serve` runs the server, `ocr` and `batch` send files to one."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import get_args

from pydantic import ValidationError

from openai_ocr import __version__
from openai_ocr.cli.serve import add_setting_flags
from openai_ocr.ocr.models import OCROptions
from openai_ocr.ocr.prompts import MODES
from openai_ocr.settings import ResolutionChoice

API_KEY_ENV = ("OPENAI_OCR_API_KEY", "OPENAI_API_KEY")
"""Where `ocr` and `batch` find the server's key without `--api-key`, in this order."""

RESOLUTIONS = get_args(ResolutionChoice)

OPTION_FLAGS = {"pages": "--pages", "mode": "--mode", "ref": "--ref", "prompt": "--prompt",
                "dpi": "--dpi", "resolution": "--resolution", "max_tokens": "--max-tokens"}
"""The request options `add_ocr_flags` adds: OCROptions field -> flag."""


def resolution_mode(value: str) -> str:
    """`--resolution` names a vision mode; a number is the old `batch --resolution DPI`."""
    if value.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"{value} is not a vision resolution mode (choose from {', '.join(RESOLUTIONS)}); "
            f"for the PDF render resolution use --dpi {value.strip()}")
    return value


def add_ocr_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `ocr` and `batch` share: the output format, the server's key and the OCR
    request options (the fields of OCROptions, checked by `ocr_options`)."""
    parser.add_argument("--output", choices=["md", "json", "pdf", "hocr", "alto"], default="md",
                        help="write NAME.md (markdown), NAME.json (pages, blocks, boxes), NAME.ocr.pdf "
                        "(searchable PDF), NAME.hocr (hOCR) or NAME.alto.xml (ALTO)")
    parser.add_argument("--pages", help='pages of multi-page inputs (PDFs, multi-frame TIFFs), '
                        'e.g. "1-3,7"; single images are always read whole')
    parser.add_argument("--mode", choices=list(MODES), default=None,
                        help="named prompt (default: markdown with grounding)")
    parser.add_argument("--ref", metavar="TEXT", help="the text to find, for --mode locate")
    parser.add_argument("--prompt", metavar="TEXT",
                        help="raw DeepSeek-OCR prompt (wins over --mode)")
    parser.add_argument("--dpi", type=int, help="PDF render resolution (default: the server's, 144)")
    parser.add_argument("--resolution", type=resolution_mode, choices=RESOLUTIONS,
                        help="vision resolution mode (default: the server's, gundam); smaller is "
                        "faster; auto: each page in the smallest mode that holds its text")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="output token limit per page")
    parser.add_argument("--api-key", metavar="KEY",
                        help=f"API key of the server (default: ${API_KEY_ENV[0]}, else "
                        f"${API_KEY_ENV[1]}; the variables keep it out of `ps`)")


def api_key(args: argparse.Namespace) -> str | None:
    """--api-key, then $OPENAI_OCR_API_KEY, then $OPENAI_API_KEY (empty values are unset)."""
    return args.api_key or next((os.environ[n] for n in API_KEY_ENV if os.environ.get(n)), None)


def ocr_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OCROptions:
    """The request options of the flags, checked here (exit 2) rather than once per file."""
    try:
        options = OCROptions(**{field: getattr(args, field) for field in OPTION_FLAGS})
    except ValidationError as exc:
        problems = "; ".join(
            f"{OPTION_FLAGS.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'options'}: {e['msg']}"
            for e in exc.errors())
        parser.exit(2, f"openai-ocr: {problems}\n")
    if options.mode == "locate" and not options.ref and not options.prompt:
        parser.exit(2, "openai-ocr: --mode locate needs --ref TEXT (the text to find)\n")
    return options


def make_out_dir(out_dir: Path | None, parser: argparse.ArgumentParser) -> None:
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.exit(2, f"openai-ocr: cannot create --out-dir {out_dir}: {exc}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openai-ocr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"openai-ocr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the server", allow_abbrev=False,  # never swallow a vLLM flag
        description="Run the OCR server. Engines: an OpenAI-compatible upstream (gateway), "
        "vLLM in-process (MODEL given, or a GPU present), or the embedded CPU engine. "
        "Flags not listed here are passed to vLLM in vllm mode.")
    serve.add_argument("model", nargs="?", help="model to serve with vLLM "
                       "(default deepseek-ai/DeepSeek-OCR); implies --engine vllm")
    serve.add_argument("--config", help="TOML settings file (default ./config.toml if present)")
    add_setting_flags(serve)  # --host, --upstream-url, --api-key...: from the settings' fields
    serve.add_argument("--api-key-file", metavar="PATH",
                       help="file of API keys clients must present, one a line (keeps them out of `ps`)")

    ocr = commands.add_parser(
        "ocr", help="OCR images, PDFs or Office documents, writing NAME.md, NAME.json, NAME.ocr.pdf, "
        "NAME.hocr or NAME.alto.xml next to each",
        description="Send images or PDFs to a running server (--server), or, without "
        "--server, to the upstream URL of the config. Exits non-zero if any file failed.")
    ocr.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ocr.add_argument("--server", help="openai-ocr server URL (default: the config's upstream "
                     "URL if set, else http://127.0.0.1:8000)")
    add_ocr_flags(ocr)
    ocr.add_argument("--out-dir", type=Path, help="write results here instead of next to the "
                     "files (created if missing)")
    ocr.add_argument("--config", help="TOML settings file")

    batch = commands.add_parser(
        "batch", help="OCR a corpus (files and folders) as OpenAI batches on a server",
        description="Upload PDFs, images and Office documents (folders searched recursively) to a "
        "server and run them as batches; writes NAME.md, NAME.json, NAME.ocr.pdf, NAME.hocr or "
        "NAME.alto.xml next to each input (or under --out-dir). "
        "Run the same command again to pick up where it left off. Exits non-zero if any failed.")
    batch.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    batch.add_argument("--server", default="http://127.0.0.1:8000", help="openai-ocr server URL")
    add_ocr_flags(batch)
    batch.add_argument("--out-dir", type=Path, help="write results here (same sub-folders; "
                       "created if missing)")
    batch.add_argument("--max-requests", type=int, default=50_000,
                       help="lines per batch (the server's batches.max_requests)")
    batch.add_argument("--pages-per-line", type=int, default=100, metavar="N",
                       help="send a PDF longer than N pages as page ranges of N (one batch line "
                       "each, spread over the server's replicas), joined back in page order; "
                       "0: every document as one line (markdown and JSON outputs; default 100)")
    batch.add_argument("--no-wait", dest="wait", action="store_false",
                       help="submit and exit; run again to collect the results")
    batch.add_argument("--poll-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    return parser


def batch_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from openai import AuthenticationError, OpenAIError, PermissionDeniedError

    from openai_ocr.cli.batch import run
    from openai_ocr.cli.client import KEY_HINT

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.exit(2, f"openai-ocr: no such file or folder: {', '.join(missing)}\n")
    options = ocr_options(args, parser)
    make_out_dir(args.out_dir, parser)
    try:
        failures = run(args.paths, args.server, args.output, options, args.out_dir,
                       api_key(args), args.wait, args.max_requests, args.poll_interval,
                       args.pages_per_line)
    except (AuthenticationError, PermissionDeniedError) as exc:
        message = exc.body.get("message") if isinstance(exc.body, dict) else None
        print(f"openai-ocr: {args.server}: {exc.status_code} {message or exc.message} "
              f"({KEY_HINT})", file=sys.stderr)
        return 1
    except OpenAIError as exc:
        print(f"openai-ocr: {exc}", file=sys.stderr)
        return 1
    if failures:
        print(f"openai-ocr: {failures} document(s) failed", file=sys.stderr)
    return 1 if failures else 0


def ocr_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from openai_ocr.cli.client import run
    from openai_ocr.settings import load_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        parser.exit(2, f"openai-ocr: no such file: {', '.join(missing)}\n")
    options = ocr_options(args, parser)
    try:
        settings = load_settings(args.config)
    except (ValidationError, FileNotFoundError) as exc:
        parser.exit(2, f"openai-ocr: {exc}\n")
    make_out_dir(args.out_dir, parser)
    failures = asyncio.run(run(args.files, options, args.output, args.server, settings,
                               api_key(args), args.out_dir))
    if failures:
        print(f"openai-ocr: {failures} of {len(args.files)} file(s) failed", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if args.command == "serve":
        from openai_ocr.cli.serve import serve

        return serve(args, passthrough, parser)
    if passthrough:
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    if args.command == "batch":
        return batch_command(args, parser)
    return ocr_command(args, parser)


if __name__ == "__main__":
    sys.exit(main())
