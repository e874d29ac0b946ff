"""/docs in a real browser: headless Chromium, driven over the DevTools protocol, opens /docs
of a live server, enters the API key through "Authorize", runs "Try it out" on listCredits and
sees the server answer 200 to a request that carried the key. Skipped where Chromium is not
installed (`apt-get install chromium`)."""

import asyncio
import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.live_server import create_key, free_port, live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


class Page:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.sent = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.sent += 1
        me = self.sent
        await self.socket.send(json.dumps({"id": me, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == me:
                assert "error" not in message, message
                return dict(message["result"])

    async def js(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 20) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"never true in the page: {expression}")

    async def click(self, selector: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.js(f"document.querySelector({json.dumps(selector)}).click()")

    async def type_into(self, selector: str, text: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.call("Input.insertText", text=text)


@asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    port = free_port()
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1280,1600",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json").json()
                page = next(t for t in targets if t["type"] == "page")
                break
            except (httpx.TransportError, StopIteration, ValueError):
                assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
                await asyncio.sleep(0.2)
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        process.wait(timeout=15)


async def test_docs_authorize_and_try_it_out_send_the_key(
    database_url: str, tmp_path: Path
) -> None:
    with live_server(database_url) as server:
        key = create_key(database_url, f"org-docs-{uuid.uuid4().hex}")
        async with chromium(tmp_path / "profile") as page:
            await page.call("Page.navigate", url=f"{server.base_url}/docs")
            await page.wait_for("document.querySelectorAll('.opblock').length >= 18")
            await page.click(".btn.authorize")
            await page.type_into(".auth-container input", key)
            await page.click(".auth-btn-wrapper .authorize")
            await page.click(".auth-btn-wrapper .btn-done")
            operation = "#operations-Credits-listCredits"
            await page.click(f"{operation} .opblock-summary-control")
            await page.click(f"{operation} .try-out__btn")
            await page.click(f"{operation} .execute")
            status = await page.wait_for(
                f"(document.querySelector('{operation} .live-responses-table "
                ".response .response-col_status') || {}).innerText"
            )
            curl = await page.js(f"document.querySelector('{operation} .curl-command').innerText")
            shot = await page.call("Page.captureScreenshot", format="png")
            (tmp_path / "docs.png").write_bytes(base64.b64decode(shot["data"]))
    assert status.strip() == "200", curl
    assert f"Authorization: Bearer {key}" in curl
