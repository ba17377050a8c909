"""deploy/ stays runnable: valid YAML, and every flag it passes exists in the real CLIs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from openai_ocr.cli.main import build_parser
from tests.cluster.cluster import router_command

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FILES = [DEPLOY / "compose.yaml", DEPLOY / "kubernetes" / "openai-ocr.yaml"]


def documents() -> list[dict[str, Any]]:
    return [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def commands() -> list[tuple[str, list[str]]]:
    """(image, argv) of every container in the compose file and the Kubernetes manifests."""
    found: list[tuple[str, list[str]]] = []
    for doc in documents():
        for service in (doc.get("services") or {}).values():
            if service["image"].startswith("openai-ocr"):  # (not the postgres service)
                found.append((service["image"], [str(a) for a in service["command"]]))
        containers = (doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))
        found += [(c["image"], [str(a) for a in c["args"]]) for c in containers]
    return found


def flags(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


def test_the_files_parse_and_name_every_part() -> None:
    images = {image for image, _ in commands()}
    assert images == {"openai-ocr:latest", "openai-ocr-router:latest", "openai-ocr-gateway:latest"}
    kinds = {doc.get("kind") for doc in documents()}
    assert {"Deployment", "Service", "Role", "RoleBinding", "ServiceAccount"} <= kinds


def test_router_flags_exist_in_vllm_router() -> None:
    help_text = subprocess.run([router_command(), "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    known = set(re.findall(r"(--[a-z0-9-]+)", help_text))
    used = set().union(*(flags(argv) for image, argv in commands() if "router" in image))
    assert used and used <= known, sorted(used - known)


@pytest.mark.parametrize("image", ["openai-ocr-gateway:latest", "openai-ocr:latest"])
def test_openai_ocr_flags_exist(image: str) -> None:
    """Gateway flags are ours; a node's flags are ours or vLLM's (parsed by the launcher)."""
    for _, argv in (c for c in commands() if c[0] == image):
        args, passthrough = build_parser().parse_known_args(argv)
        assert args.command == "serve"
        if image == "openai-ocr:latest":
            from openai_ocr.vllm_plugin.launcher import build_args

            build_args(passthrough, model=args.model)  # vLLM's own parser: exits on an unknown flag
        else:
            assert not passthrough, passthrough


def test_the_gateway_replicas_share_one_state_store() -> None:
    """Compose runs PostgreSQL for the gateway; the Kubernetes gateway replicas take the
    database and the bucket from a Secret (issue 27: any replica serves any file and batch)."""
    compose, *manifests = documents()
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["OPENAI_OCR_STORAGE__DATABASE_URL"].startswith("postgresql://")
    assert "postgres" in gateway["depends_on"] and "postgres" in compose["services"]
    [deployment] = [d for d in manifests if d.get("kind") == "Deployment" and d["metadata"]["name"] == "gateway"]
    assert deployment["spec"]["replicas"] >= 2
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"OPENAI_OCR_STORAGE__DATABASE_URL", "OPENAI_OCR_STORAGE__BLOB_URL"} <= env
