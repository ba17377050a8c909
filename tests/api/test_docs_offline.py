"""/docs and /redoc work with no network: every asset they reference is served by us."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import pytest

URL_IN_HTML = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections anywhere but loopback fail, as on a machine without internet."""
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network unavailable in this test ({host})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)


@pytest.mark.parametrize("page, assets", [
    ("/docs", {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"}),
    ("/redoc", {"/docs-assets/redoc.standalone.js"}),
])
def test_docs_pages_reference_only_same_origin_assets_that_answer(
        no_network: None, gateway: str, page: str, assets: set[str]) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("cdn.jsdelivr.net", 443), timeout=2)
    html = httpx.get(f"{gateway}{page}").text
    urls = {a or b for a, b in URL_IN_HTML.findall(html)}
    assert assets <= urls, urls
    assert not [u for u in urls if re.match(r"(https?:)?//", u)], urls
    assert "fonts.googleapis" not in html
    for url in urls:
        r = httpx.get(f"{gateway}{url}")
        assert r.status_code == 200, url
        if url.endswith(".js"):
            assert len(r.content) > 100_000, url  # the real bundle, not a stub
