"""One error shape, short and saying what to do, for every way a request can be wrong.

Each case is what a new user sent while following the README (issue 12, items 2, 4, 5, 7).
"""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.helpers import SERVED_NAME, b64, blank_pdf, parse_sse, png_bytes, png_header_only

PNG = png_bytes()


def error_of(r: httpx.Response, status: int) -> dict:
    """The `error` object of an answer, after checking the status and the one shape."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert "detail" not in body or all("input" not in d for d in body["detail"])
    return body["error"]


@pytest.mark.parametrize("route", ["/ocr", "/v1/chat/completions", "/v1/ocr", "/ocr/batch"])
def test_a_file_posted_to_a_json_route_is_415_naming_the_upload_route(
        gateway: str, route: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        multipart = httpx.post(f"{gateway}{route}", files={"file": ("page.png", PNG, "image/png")})
        raw = httpx.post(f"{gateway}{route}", content=PNG,
                         headers={"content-type": "application/x-www-form-urlencoded"})
        bare = httpx.post(f"{gateway}{route}", content=PNG)  # curl --data-binary, no type
    for r in (multipart, raw, bare):
        error = error_of(r, 415)
        assert "/ocr/file" in error["message"] and "multipart" in error["message"]
    assert not any("Traceback" in (r.exc_text or "") for r in caplog.records)
    assert not any("PNG" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("route", ["/ocr", "/v1/ocr", "/v1/chat/completions", "/ocr/batch"])
def test_a_json_body_that_is_not_utf8_is_400(gateway: str, route: str) -> None:
    r = httpx.post(f"{gateway}{route}", content=b'{"image_base64": "\xff\xfe\x89"}',
                   headers={"content-type": "application/json"})
    assert "UTF-8" in error_of(r, 400)["message"]


@pytest.mark.parametrize("route", ["/ocr/file", "/ocr/stream"])
def test_multipart_without_a_boundary_is_400(gateway: str, route: str) -> None:
    r = httpx.post(f"{gateway}{route}", content=b"--x\r\n\r\n",
                   headers={"content-type": "multipart/form-data"})
    assert "boundary" in error_of(r, 400)["message"]


@pytest.mark.parametrize("route", ["/ocr/file", "/ocr/stream"])
def test_json_sent_to_the_upload_routes_says_to_send_multipart(gateway: str, route: str) -> None:
    r = httpx.post(f"{gateway}{route}", json={"image_base64": b64(PNG)})
    message = error_of(r, 415)["message"]
    assert "multipart/form-data" in message and "POST /ocr" in message


def test_malformed_json_names_line_and_column(gateway: str) -> None:
    r = httpx.post(f"{gateway}/ocr", content=b'{\n  "image_base64": "abc",\n  "mode": \n}',
                   headers={"content-type": "application/json"})
    assert error_of(r, 400)["message"] == "the body is not valid JSON (Expecting value at line 4 column 1)"


def test_unknown_routes_and_methods_answer_in_the_error_shape(gateway: str) -> None:
    missing = error_of(httpx.get(f"{gateway}/v1/nothing"), 404)
    assert missing["message"] == "no route GET /v1/nothing; the routes are listed at /docs"
    wrong = httpx.get(f"{gateway}/ocr")
    assert error_of(wrong, 405)["message"] == "GET is not allowed on /ocr"
    assert wrong.headers["allow"] == "POST"


def test_a_batch_sent_as_a_bare_list_gets_a_short_message(gateway: str) -> None:
    items = [{"image_base64": b64(png_bytes(400, 300))} for _ in range(20)]
    r = httpx.post(f"{gateway}/ocr/batch", json=items)
    error = error_of(r, 422)
    assert error["message"] == 'the body must be a JSON object, not an array (a batch is {"requests": [...]})'
    assert len(r.content) < 1000


def test_a_misspelt_field_is_422_naming_it_and_the_closest_known_one(gateway: str) -> None:
    error = error_of(httpx.post(f"{gateway}/ocr", json={"image_base64": b64(PNG), "temprature": 0}), 422)
    assert error["param"] == "temprature"
    assert error["message"] == "temprature: unknown field; did you mean 'temperature'?"
    far = error_of(httpx.post(f"{gateway}/ocr", json={"image_base64": b64(PNG), "langauge": "en"}), 422)
    assert far["param"] == "langauge" and "known fields: " in far["message"] and "mode" in far["message"]


def test_a_misspelt_field_in_a_batch_item_fails_that_item(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/ocr/batch", json={"requests": [
        {"image_base64": b64(PNG)}, {"image_base64": b64(PNG), "promt": "Free OCR."}]})
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["success", "error"]
    assert results[1]["error"]["message"] == "promt: unknown field; did you mean 'prompt'?"


def test_validation_errors_set_param(gateway: str) -> None:
    error = error_of(httpx.post(f"{gateway}/ocr", json={"image_base64": b64(PNG), "temperature": "hot"}), 422)
    assert error["param"] == "temperature"
    form = error_of(httpx.post(f"{gateway}/ocr/file", files={"file": ("p.png", PNG)},
                               data={"max_tokens": "lots"}), 422)
    assert form["param"] == "max_tokens"


def test_the_openai_body_stays_permissive_for_vllm_extras(gateway: str, upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway}/v1/chat/completions", json={
        "model": SERVED_NAME, "messages": [{"role": "user", "content": "hi"}],
        "skip_special_tokens": False, "vllm_xargs": {"ngram_size": 30}})
    assert r.status_code == 200, r.text
    assert upstream.requests[-1]["vllm_xargs"]["ngram_size"] == 30


def test_a_non_image_is_400_listing_pdf_without_python_reprs(gateway: str) -> None:
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("notes.txt", b"just some text\n")})
    message = error_of(r, 400)["message"]
    assert "PDF" in message and "PNG" in message
    assert "<_io" not in message and "0x" not in message


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/ocr"])
def test_an_unknown_model_is_404_model_not_found_naming_the_served_ones(gateway: str, route: str,
                                                                       upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0)
    if route == "/v1/chat/completions":
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        error = caught.value.body
        assert isinstance(error, dict)
    else:
        error = error_of(httpx.post(f"{gateway}/v1/ocr", json={"model": "gpt-4o", "document": {
            "type": "image_url", "image_url": f"data:image/png;base64,{b64(PNG)}"}}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'gpt-4o'" in error["message"] and SERVED_NAME in error["message"]
    assert not upstream.requests, "an unknown model must not reach the engine"


def test_the_served_model_and_no_model_are_accepted(gateway: str, upstream: FakeUpstream) -> None:
    for body in ({"model": SERVED_NAME}, {}):
        r = httpx.post(f"{gateway}/v1/chat/completions",
                       json={**body, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text


def test_the_stream_done_event_carries_the_request_id_of_the_header(
        gateway: str, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="openai_ocr.access"):
        with httpx.stream("POST", f"{gateway}/ocr/stream", files={"file": ("d.pdf", blank_pdf(2))},
                          headers={"X-Request-ID": "client-id-42"}) as r:
            assert r.status_code == 200
            events = [json.loads(e) for e in parse_sse(r.iter_lines()) if e != "[DONE]"]
        generated = httpx.post(f"{gateway}/ocr/stream", files={"file": ("p.png", PNG)})
        wanted = {"client-id-42", generated.headers["x-request-id"]}
        deadline = time.monotonic() + 30  # the access line is written once the answer is sent
        while not wanted <= {json.loads(rec.getMessage())["request_id"] for rec in caplog.records
                             if rec.name == "openai_ocr.access"}:
            assert time.monotonic() < deadline, "the request ids never reached the access log"
            time.sleep(0.02)
    assert r.headers["x-request-id"] == "client-id-42"
    assert events[-1]["type"] == "done" and events[-1]["request_id"] == "client-id-42"
    done = [json.loads(e) for e in parse_sse(generated.text.splitlines()) if e != "[DONE]"][-1]
    assert done["request_id"] == generated.headers["x-request-id"]


def test_a_100_megapixel_image_quotes_the_configured_limit_not_pillows(gateway: str) -> None:
    from openai_ocr.settings import load_settings

    limit = load_settings().limits.max_image_pixels
    r = httpx.post(f"{gateway}/ocr/file", files={"file": ("big.png", png_header_only(10_000, 10_000))})
    message = error_of(r, 413)["message"]
    assert f"{limit}" in message and "89478485" not in message and "89,478,485" not in message
