"""``/docs`` and ``/redoc`` work without the network: every asset they name is served by the service itself.

Over real HTTP to a running app: each page's ``src``/``href``/``spec-url``/``url(...)`` and the spec URL in
Swagger UI's script are fetched from the same server (200, the right content type), and no page or stylesheet
names a host other than the one it came from. When Debian's Chromium is there, it also renders ``/docs``
headless and the test checks Swagger UI drew the API's operations.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import uvicorn

from service.api import create_app
from service.settings import ServiceSettings
from tests.support.processes import free_port, wait_until

PAGES = ["/docs", "/redoc"]
ABSOLUTE = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)""")
SCRIPT_URL = re.compile(r"""\burl:\s*['"]([^'"]+)['"]""")  # Swagger UI's spec: SwaggerUIBundle({url: '...'})
EXPECTED_TYPE = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.inline: list[str] = []  # <script> and <style> bodies

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]

    def handle_data(self, data: str) -> None:
        self.inline.append(data)


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    settings = ServiceSettings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'service.db'}")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, 0.05, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _references(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    inline = "\n".join(parser.inline)
    return parser.links + SCRIPT_URL.findall(inline) + CSS_URL.findall(inline)


def _assert_local(text: str, base_url: str, where: str) -> None:
    """No URL in ``text`` leads off the server (namespace URIs like w3.org's are names, not requests)."""
    for found in ABSOLUTE.findall(text):
        host = urlsplit(found if "//" in found[:8] else f"http:{found}").netloc
        assert host == urlsplit(base_url).netloc, f"{where} names another host: {found}"


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_every_asset_from_the_service(base_url: str, page: str) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.get(base_url + page)
        assert response.status_code == 200
        _assert_local(response.text, base_url, page)
        references = _references(response.text)
        # Swagger UI: its CSS, script, favicon and the spec; ReDoc: its script, favicon and the spec.
        assert len(references) == (4 if page == "/docs" else 3), references
        assert "/openapi.json" in references
        for ref in references:
            url = urljoin(base_url + page, ref)
            assert urlsplit(url).netloc == urlsplit(base_url).netloc, f"{page} asks for {url}"
            asset = client.get(url)
            assert asset.status_code == 200, f"{url}: {asset.status_code}"
            kind = EXPECTED_TYPE[Path(urlsplit(url).path).suffix]
            assert kind in asset.headers["content-type"], f"{url}: {asset.headers['content-type']}"
            assert len(asset.content) > 100, url
            if url.endswith(".css"):  # what a stylesheet asks for: inline data only, or this server
                for inner in CSS_URL.findall(asset.text):
                    assert (
                        inner.startswith("data:") or urlsplit(urljoin(url, inner)).netloc == urlsplit(base_url).netloc
                    )


def test_docs_render_in_headless_chromium(base_url: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); /docs not rendered in a browser")
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--dump-dom"]
    dom = subprocess.run([*args, f"{base_url}/docs"], capture_output=True, text=True, timeout=120, check=True).stdout
    # Rendered by Swagger UI's script from the spec: the title block and one block per operation.
    assert 'class="swagger-ui"' in dom
    assert "mixup-studies" in dom
    assert dom.count('class="opblock ') >= 5, dom[:2000]
