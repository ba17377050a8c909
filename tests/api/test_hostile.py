"""The hostile-input suite: each attack of issue 19, scaled to run in minutes on 2 cores.

One server runs as a subprocess (the gateway in front of the fake upstream, two decoder
processes) so its memory, CPU time and children can be measured and its command line and
environment inspected. Each attack asserts its status; that `/live` keeps answering while it
runs and that the event loop (the server's main thread) does none of its work; a normal page
after it; and where it matters the peak memory of the server's process tree (figures and
bounds: docs/hostile-inputs.md).

Costs are CPU seconds, not wall-clock windows: a loaded machine stretches the clock, not the
CPU time a piece of work takes. The bugs these tests guard against cost tens of CPU seconds
(a 25 s regex, 1-8 s per WebP decode on the loop), the fixed code a fraction of one.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.fake_upstream import FakeUpstream
from tests.helpers import (
    ServerProcess,
    b64,
    blank_pdf,
    free_port,
    gif_with_frames,
    heavy_pdf,
    http_answer,
    image_size_of,
    leave_when,
    many_ifd_tiff,
    parse_sse,
    png_bytes,
    serve_command,
    text_frames_tiff,
    wait_until,
)

KEY = "hostile-suite-key-7f3a"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]
WEBP_BATCH_BOUND = 3 * 1024**3
"""The issue's target for 12 x 8000x8000 lossless WebP in one batch (6.3 GB before)."""
WEBP_AFTER_BOUND = 1024**3
"""Server and decoders together once the batch is answered (1.4-2.6 GB kept before)."""
WEBP_ITEMS = 8
"""8 rather than 12 (one decode takes 1-8 s here): before the decoder pool, 8 such items
peaked at about 4 GB; the bound holds for any count, since only the decoder processes
(2 by default) decode at a time."""
LOOP_CPU_S = 1.0
"""CPU seconds the event loop may spend while an attack runs, besides its probes: parsing the
requests and answering them. One WebP decode on the loop alone would take 1-8 s."""
PROBE_CPU_S = 0.01
"""CPU seconds one `/live` probe may cost the loop (a few milliseconds measured)."""
PATIENCE_S = 60
"""How long a probe or a normal page may wait on a slow machine before the test fails: a
deadline for a hang, not a latency window."""


# -- the server under attack, and its memory ------------------------------------

def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (decoder processes and their fork server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (parent := _parent(int(entry))) >= 0:
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants."""
    total = 0
    for current in tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def cpu_s(stat_path: str) -> float:
    """User + system CPU seconds of a process or thread (`/proc/.../stat`); 0 once it is gone."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_s(pid: int) -> float:
    """CPU seconds of the server's main thread, where uvicorn runs the event loop."""
    return cpu_s(f"/proc/{pid}/task/{pid}/stat")


def decoders(pid: int) -> set[int]:
    """The decoder processes of server `pid`: the pool's workers, children of its fork server."""
    children = set(tree(pid)) - {pid}
    return {p for p in children if _parent(p) in children}


class Server:
    def __init__(self, process: ServerProcess) -> None:
        assert process.proc is not None
        self.url, self.proc, self.log = process.url, process.proc, process.log_path

    @contextmanager
    def peak_memory(self) -> Iterator[list[int]]:
        """Samples the tree's RSS every 20 ms; yields a list whose [0] is the peak so far."""
        peak = [tree_rss(self.proc.pid)]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss(self.proc.pid))
                stop.wait(0.02)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield peak
        finally:
            stop.set()
            thread.join()


@pytest.fixture(scope="module")
def server(fake_upstream: tuple[FakeUpstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _, upstream_url = fake_upstream
    folder = tmp_path_factory.mktemp("hostile")
    key_file = folder / "keys"
    key_file.write_text(KEY + "\n")
    port = free_port()
    env = {**os.environ, "OPENAI_OCR_LIMITS__REQUEST_TIMEOUT_S": "300",
           "OPENAI_OCR_CONNECTIONS__HEADER_TIMEOUT_S": "2",
           "OPENAI_OCR_BUDGET__DECODE_WORKERS": "2", "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_OCR_API_KEYS", None)
    cmd = serve_command("--upstream-url", upstream_url, "--host", "127.0.0.1", "--port", str(port),
                        "--api-key-file", str(key_file))
    with ServerProcess(cmd, f"http://127.0.0.1:{port}", folder / "server.log", "/live", env) as process:
        yield Server(process)


PROBE = httpx.Client(timeout=PATIENCE_S)  # one kept-alive connection, like a load balancer's probe


def live(url: str) -> None:
    assert PROBE.get(f"{url}/live").status_code == 200


def during(attack: Callable[[], object], server: Server) -> object:
    """Run `attack` in a thread; meanwhile `/live` must keep answering, and the event loop
    must do none of the attack's work (its CPU time stays under the probes' and the
    requests' own cost)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(attack()), daemon=True)
    before = loop_cpu_s(server.proc.pid)
    thread.start()
    probes = 0
    while thread.is_alive() or probes == 0:
        live(server.url)
        probes += 1
        thread.join(timeout=0.2)
    spent = loop_cpu_s(server.proc.pid) - before
    assert result, "the attack raised"
    assert spent < LOOP_CPU_S + PROBE_CPU_S * probes, f"the event loop spent {spent:.2f} CPU s ({probes} probes)"
    return result[0]


def normal_page_after(server: Server) -> None:
    r = httpx.post(f"{server.url}/ocr", json={"image_base64": b64(png_bytes())}, headers=AUTH,
                   timeout=PATIENCE_S)
    assert r.status_code == 200, r.text


def assert_error(r: httpx.Response, *statuses: int) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    return body


def give_up_after(url: str, seconds: float, count: int, **request: object) -> None:
    """`count` clients that send `request` and leave after `seconds`."""
    async def one(client: httpx.AsyncClient) -> None:
        try:
            await client.post(url, timeout=seconds, **request)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            pass

    async def all_of_them() -> None:
        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(one(client) for _ in range(count)))

    asyncio.run(all_of_them())


# -- the attacks ----------------------------------------------------------------

def test_quadratic_prompt_is_a_cheap_400(server: Server) -> None:
    body = {"image_base64": b64(png_bytes()), "prompt": "locate<|ref|>" * 16000}
    r = during(lambda: httpx.post(f"{server.url}/ocr", json=body, headers=AUTH, timeout=30), server)
    assert_error(r, 400)  # type: ignore[arg-type]
    assert "prompt" in r.json()["error"]["message"]  # type: ignore[union-attr]
    normal_page_after(server)


def test_lite_locate_parsing_is_linear() -> None:
    """CPU time of this thread: the same on a loaded machine (25-29 s with the lazy regex)."""
    from openai_ocr.engines.lite.engine import parse_prompt
    from openai_ocr.errors import BadRequest

    started = time.thread_time()
    with pytest.raises(BadRequest):
        parse_prompt("locate<|ref|>" * 16000)
    assert time.thread_time() - started < 1.0


def test_tiff_with_thousands_of_ifds_is_refused_and_leaves_no_work(server: Server) -> None:
    data = many_ifd_tiff(4000)
    files = {"file": ("ifd.tiff", data, "image/tiff")}
    r = during(lambda: httpx.post(f"{server.url}/ocr/file", files=files, headers=AUTH, timeout=30), server)
    assert_error(r, 413)  # type: ignore[arg-type]
    during(lambda: give_up_after(f"{server.url}/ocr/file", 1.0, 6, files=files, headers=AUTH), server)
    normal_page_after(server)


RENDERING_CPU_S = 0.3
"""CPU seconds a decoder must have spent on the heavy PDF to count as rendering one of its
pages (opening it takes far less; one page, seconds)."""


def test_slow_pdf_pages_are_stopped_when_clients_leave(server: Server) -> None:
    """A client leaves while the decoders render its slow pages (seconds each): the decoders
    at work are killed (the pool starts new ones), not left to finish pages nobody waits for."""
    pdf = heavy_pdf(5, 30000, side=150)
    idle = {p: cpu_s(f"/proc/{p}/stat") for p in decoders(server.proc.pid)}
    last = dict(idle)
    busy: set[int] = set()

    def rendering() -> bool:
        """Decoders at work on a page right now (recorded in `busy`): still using CPU, and for
        longer than opening the document takes (a page takes seconds), so a decoder that only
        probed the file and is idle again when the client leaves is not counted."""
        now = {p: cpu_s(f"/proc/{p}/stat") for p in idle}
        busy.clear()
        busy.update(p for p in now if now[p] > last[p] and now[p] - idle[p] >= RENDERING_CPU_S)
        last.update(now)
        return bool(busy)

    during(lambda: leave_when(rendering, "a decoder rendering the PDF", f"{server.url}/ocr/file", headers=AUTH,
                              files={"file": ("heavy.pdf", pdf, "application/pdf")}), server)
    wait_until(lambda: not busy & decoders(server.proc.pid), PATIENCE_S,
               f"the decoders rendering for the client that left ({sorted(busy)}) being stopped")
    r = httpx.post(f"{server.url}/ocr/file", files={"file": ("one.pdf", blank_pdf(1), "application/pdf")},
                   headers=AUTH, timeout=PATIENCE_S)
    assert r.status_code == 200, r.text


def test_webp_batch_stays_under_the_memory_bound(server: Server) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8000, 8000), "white").save(out, format="WEBP", lossless=True)
    item = {"image_base64": b64(out.getvalue())}
    assert len(out.getvalue()) < 100_000
    with server.peak_memory() as peak:
        r = during(lambda: httpx.post(f"{server.url}/ocr/batch", json={"requests": [item] * WEBP_ITEMS},
                                      headers=AUTH, timeout=400), server)
    assert r.status_code == 200, r.text  # type: ignore[union-attr]
    codes = [x["status_code"] for x in r.json()["results"]]  # type: ignore[union-attr]
    # past the pixel budget an item waits `budget.max_wait_s`, then gets 429 (never a 5xx)
    assert set(codes) <= {200, 429} and codes.count(200) >= 2, codes
    after = tree_rss(server.proc.pid)
    print(f"webp batch: peak tree RSS {peak[0] / 2**20:.0f} MiB, after {after / 2**20:.0f} MiB")
    assert peak[0] < WEBP_BATCH_BOUND
    assert after < WEBP_AFTER_BOUND  # decoded pixels live in the decoders only while decoding
    normal_page_after(server)


def test_gif_with_a_thousand_big_frames_is_refused_cheaply(server: Server) -> None:
    data = gif_with_frames(1000, 8000, 8000)
    assert len(data) < 30_000
    with server.peak_memory() as peak:
        r = during(lambda: httpx.post(f"{server.url}/ocr/file", data={"pages": "1-1000"}, headers=AUTH,
                                      files={"file": ("f.gif", data, "image/gif")}, timeout=30), server)
    assert_error(r, 413)  # type: ignore[arg-type]
    assert peak[0] < 1024**3
    normal_page_after(server)


def test_pages_of_a_text_tiff_never_mix(server: Server, upstream: FakeUpstream) -> None:
    data = text_frames_tiff(24)
    for _ in range(2):
        upstream.reset()
        r = httpx.post(f"{server.url}/ocr/file", files={"file": ("t.tiff", data, "image/tiff")},
                       data={"output": "json"}, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        assert [p["width"] for p in r.json()["pages"]] == [200 + i for i in range(1, 25)]
        sent = {image_size_of(q["messages"][-1]["content"][0]["image_url"]["url"])[0]
                for q in upstream.requests}  # a set: the SDK may retry a page on a busy machine
        assert sent == {200 + i for i in range(1, 25)}


def test_no_key_and_a_huge_body_is_refused_before_the_body(server: Server) -> None:
    before = tree_rss(server.proc.pid)
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(b"POST /ocr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 48000000\r\n\r\n{\"image_base64\": \"")
        answer = http_answer(sock)  # the 401 comes without the body being sent
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert tree_rss(server.proc.pid) - before < 100 * 2**20


def tiff_with_bad_second_frame() -> bytes:
    out = io.BytesIO()
    Image.new("L", (30, 20), 255).save(out, format="TIFF", save_all=True,
                                        append_images=[Image.new("L", (30, 20), 0)])
    data = bytearray(out.getvalue())
    offset = struct.unpack_from("<I", data, 4)[0]
    offset = struct.unpack_from("<I", data, offset + 2 + struct.unpack_from("<H", data, offset)[0] * 12)[0]
    for i in range(struct.unpack_from("<H", data, offset)[0]):
        at = offset + 2 + i * 12
        if struct.unpack_from("<H", data, at)[0] == 273:  # StripOffsets beyond the end of the file
            struct.pack_into("<I", data, at + 8, len(data) + 10_000)
    return bytes(data)


def test_table_of_bad_inputs_are_4xx_json(server: Server, upstream: FakeUpstream) -> None:
    no_dims = b"II*\x00" + struct.pack("<IHHHII", 8, 1, 259, 3, 1, 1) + struct.pack("<I", 0)
    wide = io.BytesIO()
    Image.new("L", (30000, 2), 255).save(wide, format="PNG")
    cases = [
        ("/ocr/file", {"files": {"file": ("a.tiff", no_dims, "image/tiff")}}, 400),
        ("/ocr/file", {"files": {"file": ("w.png", wide.getvalue(), "image/png")}}, 400),
        ("/ocr", {"content": b'{"image_base64": "%s", "temperature": NaN}' % b64(png_bytes()).encode(),
                  "headers": {**AUTH, "content-type": "application/json"}}, 400),
        ("/v1/chat/completions", {"json": {"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64," + b64(blank_pdf(2))}}]}],
            "pages": 2}}, 400),
        ("/v1/ocr", {"json": {"document": {"type": "document_url", "document_url":
                     "data:application/pdf;base64," + b64(blank_pdf(1))}, "pages": list(range(400))}}, 400),
    ]
    for path, request, status in cases:
        request.setdefault("headers", AUTH)
        assert_error(httpx.post(f"{server.url}{path}", timeout=30, **request), status)
    marker = "ECHO-MARKER-" * 20
    r = httpx.post(f"{server.url}/ocr", json={"image_base64": b64(png_bytes()), "mode": marker},
                   headers=AUTH, timeout=30)
    assert_error(r, 422)
    assert "ECHO-MARKER" not in r.text


def test_stream_failing_on_page_two_ends_with_error_and_done(server: Server) -> None:
    with httpx.stream("POST", f"{server.url}/ocr/stream", headers=AUTH, timeout=30,
                      files={"file": ("bad.tiff", tiff_with_bad_second_frame(), "image/tiff")}) as r:
        assert r.status_code == 200
        events = parse_sse(r.iter_lines())
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["type"] == "error" and 400 <= last["error"]["code"] < 500, last
    assert any(json.loads(e).get("type") == "page_end" for e in events[:-1])


@pytest.mark.parametrize("change", [
    {"url": "http://169.254.169.254/latest/meta-data/"}, {"url": "file:///etc/passwd"},
    {"n": 64}, {"vllm_xargs": {"ngram_size": 1_000_000}}, {"top_p": 7},
])
def test_gateway_forwards_nothing_dangerous(server: Server, upstream: FakeUpstream, change: dict) -> None:
    url = change.get("url", "data:image/png;base64," + b64(png_bytes()))
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": "Free OCR."}]}],
            **{k: v for k, v in change.items() if k != "url"}}
    assert_error(httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=AUTH, timeout=30), 400)
    assert upstream.requests == []


def test_slow_header_connections_are_closed(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n")
            sock.settimeout(0.05)
        closed: set[int] = set()
        before = loop_cpu_s(server.proc.pid)
        deadline = time.monotonic() + PATIENCE_S  # header limit 2 s in this server
        probes = 0
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            for index, sock in enumerate(sockets):
                if index in closed:
                    continue
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    if sock.recv(1) == b"":
                        closed.add(index)
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    closed.add(index)
            live(server.url)
            probes += 1
        assert len(closed) == len(sockets)
        spent = loop_cpu_s(server.proc.pid) - before
        assert spent < LOOP_CPU_S + PROBE_CPU_S * probes, f"the event loop spent {spent:.2f} CPU s"
    finally:
        for sock in sockets:
            sock.close()


def test_secrets_stay_out_of_argv_environment_and_logs(server: Server) -> None:
    r = httpx.get(f"{server.url}/live?api_key=QUERY-SECRET-91", timeout=5)
    assert r.status_code == 200
    pids = [server.proc.pid]
    pids += [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == server.proc.pid]
    for pid in pids:
        for name in ("cmdline", "environ"):
            try:
                assert KEY.encode() not in Path(f"/proc/{pid}/{name}").read_bytes(), (pid, name)
            except PermissionError:
                pass
    wait_until(lambda: "/live" in server.log.read_text(), PATIENCE_S, "the access log line")
    assert "QUERY-SECRET-91" not in server.log.read_text()
    assert KEY not in server.log.read_text()


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def test_an_oversized_request_head_is_refused_and_closed(server: Server) -> None:
    """httptools has no head limit of its own: the protocol counts the head's bytes."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = b"GET /live HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(100)) + b"\r\n"
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    # a head just under the limit (64 KiB) is served
    r = httpx.get(f"{server.url}/live", headers={f"x-filler-{n}": "a" * 1000 for n in range(50)}, timeout=5)
    assert r.status_code == 200
    live(server.url)
