"""One URL parser: the image URL the gateway checks is the URL it forwards.

Audit row 4: with a public host H allowed, `http://127.0.0.1:6379\\@H/x.png` was checked as a
URL of H (`urlsplit`) and forwarded unchanged, while urllib3, requests and WHATWG parsers
read the host 127.0.0.1 from the same string. Now an http(s) image URL is parsed once by a
WHATWG parser (Ada), anything parsers disagree on is refused, and the upstream receives the
parser's normal form. `data:` URLs go on under the media type of their bytes.

The allowed host is an IP literal of a public address, so nothing here needs DNS.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator

import httpx
import pytest
import urllib3
from PIL import Image

from openai_ocr.errors import BadRequest
from openai_ocr.service.chat_policy import check_url
from openai_ocr.settings import GatewaySettings
from tests.fake_upstream import FakeUpstream
from tests.helpers import b64, gateway_settings, png_bytes, serve

ALLOWED = "1.1.1.1"
PNG = png_bytes()


@pytest.fixture(scope="module")
def url_gateway(fake_upstream: tuple[FakeUpstream, str]) -> Iterator[str]:
    """A gateway that forwards http(s) image URLs of ALLOWED."""
    with serve(gateway_settings(fake_upstream[1], gateway={"remote_url_hosts": [ALLOWED]})) as (url, _):
        yield url


def chat(gateway: str, image_url: str) -> httpx.Response:
    return httpx.post(f"{gateway}/v1/chat/completions", timeout=60, json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": "Free OCR."}]}]})


def forwarded_url(upstream: FakeUpstream) -> str:
    assert len(upstream.requests) == 1, upstream.requests
    return str(upstream.requests[0]["messages"][0]["content"][0]["image_url"]["url"])


def test_the_audit_url_is_refused_and_nothing_is_forwarded(url_gateway: str, upstream: FakeUpstream) -> None:
    attack = f"http://127.0.0.1:6379\\@{ALLOWED}/x.png"
    assert urllib3.util.parse_url(attack).host == "127.0.0.1"  # what a fetcher reads
    r = chat(url_gateway, attack)
    assert r.status_code == 400, r.text
    assert "backslash" in r.json()["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize("url", [
    f"http://user@{ALLOWED}/x.png",                 # userinfo: who is the host?
    f"http://127.0.0.1@{ALLOWED}/x.png",
    f"http://{ALLOWED}:80@127.0.0.1/x.png",
    f"http://{ALLOWED}/x\t.png",                     # WHATWG drops tabs, others keep them
    f"http://{ALLOWED}/x .png",
    f" http://{ALLOWED}/x\n.png",
    "http://%31.1.1.1/x.png",                        # percent-encoded host
    f"http://{ALLOWED}\\x.png",
    f"http:{ALLOWED}/x.png",                         # no `//`: WHATWG still finds a host
    f"http:///{ALLOWED}/x.png",
    "http://0x7f.1/x.png",                           # 127.0.0.1 in another spelling
    "file:///etc/passwd",
])
def test_urls_parsers_disagree_on_are_refused(url_gateway: str, upstream: FakeUpstream, url: str) -> None:
    r = chat(url_gateway, url)
    assert r.status_code == 400, (url, r.text)
    assert upstream.requests == []


def test_the_forwarded_url_is_the_normal_form_that_was_checked(url_gateway: str, upstream: FakeUpstream) -> None:
    r = chat(url_gateway, f"HTTP://{ALLOWED}:80/a/../pages/x.png?q=1")
    assert r.status_code == 200, r.text
    sent = forwarded_url(upstream)
    assert sent == f"http://{ALLOWED}/pages/x.png?q=1"
    assert urllib3.util.parse_url(sent).host == ALLOWED and httpx.URL(sent).host == ALLOWED


def test_other_spellings_of_an_allowed_address_go_on_normalised(url_gateway: str, upstream: FakeUpstream) -> None:
    r = chat(url_gateway, "http://16843009/x.png")  # 1.1.1.1 as one number
    assert r.status_code == 200, r.text
    assert forwarded_url(upstream) == f"http://{ALLOWED}/x.png"


def test_check_url_returns_what_it_checked() -> None:
    gateway = GatewaySettings(remote_url_hosts=[ALLOWED])
    assert asyncio.run(check_url(f"https://{ALLOWED}:443/x.png#top", gateway)) == f"https://{ALLOWED}/x.png#top"
    with pytest.raises(BadRequest):
        asyncio.run(check_url(f"https://{ALLOWED}/x.png", GatewaySettings()))
    v6 = GatewaySettings(remote_url_hosts=["2606:4700::1111", "Images.Example.COM"])
    assert asyncio.run(check_url("http://[2606:4700:0::1111]/x.png", v6)) == "http://[2606:4700::1111]/x.png"
    with pytest.raises(BadRequest, match="non-public"):
        asyncio.run(check_url("http://[::1]/x.png", GatewaySettings(remote_url_hosts=["::1"])))
    data = "data:image/png;base64," + b64(PNG)
    assert asyncio.run(check_url(data, GatewaySettings())) is data


def test_a_data_url_goes_on_under_the_type_of_its_bytes(gateway: str, upstream: FakeUpstream) -> None:
    r = chat(gateway, "data:text/html;base64," + b64(PNG))
    assert r.status_code == 200, r.text
    assert forwarded_url(upstream) == "data:image/png;base64," + b64(PNG)


def test_a_data_url_of_a_decoded_format_goes_on_as_the_page_that_was_checked(
        gateway: str, upstream: FakeUpstream) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(out, format="GIF")
    r = chat(gateway, "data:image/png;base64," + b64(out.getvalue()))
    assert r.status_code == 200, r.text
    sent = forwarded_url(upstream)
    assert sent.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(sent.split(",", 1)[1]))).format == "PNG"


def test_a_data_url_that_says_its_type_goes_on_untouched(gateway: str, upstream: FakeUpstream) -> None:
    url = "data:image/png;base64," + b64(PNG)
    assert chat(gateway, url).status_code == 200
    assert forwarded_url(upstream) == url
