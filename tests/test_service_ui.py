"""GET /ui in a real headless Chromium (Debian's ``chromium``), driven over the DevTools protocol
with aiohttp's websocket client (aiohttp comes with bentoml: no extra Python package).

A seed paragraph is pasted and tagged; the highlighted spans must be the API's entities, shown
right to left, one colour per label; the screenshot is saved as ``ui.png`` in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED_TEXT = sorted((ROOT / "seeds").glob("*.txt"))[0].read_text(encoding="utf-8")
# An astral character first: the page must count code points, as the API does, not UTF-16 units.
TEXT = "😀 " + max(SEED_TEXT.split("\n\n"), key=len).strip()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--remote-debugging-port=0",
]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium fonts-noto-core)")


class DevTools:
    """The least of a Chrome DevTools Protocol client: commands on one flattened page session."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.last_id = 0
        self.session: str | None = None
        self.exceptions: list[dict] = []

    async def send(self, method: str, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        await self.socket.send_json(message)
        while True:
            reply = await self.socket.receive_json(timeout=30)
            if reply.get("method") == "Runtime.exceptionThrown":
                self.exceptions.append(reply["params"]["exceptionDetails"])
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout:.0f} s: {expression}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def chromium_page(user_data_dir: Path, width: int = 1100, height: int = 1500):
    """A fresh headless Chromium with one blank page; stopped on exit."""
    port_file = user_data_dir / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a reused profile must not hand us the last run's port
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or len(port_file.read_text().split()) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "chromium did not start its DevTools server"
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as socket:
            devtools = DevTools(socket)
            target = await devtools.send("Target.createTarget", url="about:blank")
            devtools.session = (await devtools.send("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
            await devtools.send("Runtime.enable")
            await devtools.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            yield devtools
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


PAGE_STATE = """JSON.stringify({
  marks: [...document.querySelectorAll('#result mark.entity')].map(m => ({
    text: m.textContent, label: m.dataset.label, start: +m.dataset.start, end: +m.dataset.end, colour: m.style.background})),
  shown: document.getElementById('result').textContent,
  direction: getComputedStyle(document.getElementById('result')).direction,
  lang: document.getElementById('result').lang,
  inputDir: document.getElementById('input').dir,
  legend: [...document.querySelectorAll('#legend [data-label]')].map(e => e.dataset.label),
  rows: [...document.querySelectorAll('#entities tr')].map(r => [...r.cells].map(c => c.textContent)),
  resources: performance.getEntriesByType('resource').map(r => r.name),
})"""


def test_ui_highlights_the_apis_entities_right_to_left(ner_service, tmp_path):
    url = ner_service.url
    api = httpx.post(f"{url}/tag", json={"text": TEXT}, timeout=60)
    assert api.status_code == 200, ner_service.explain(api)
    expected = [{key: entity[key] for key in ("text", "label", "start", "end")} for entity in api.json()["entities"]]
    labels = httpx.get(f"{url}/metadata").json()["labels"]
    assert expected, "the tiny model finds entities in a seed paragraph"

    async def drive() -> tuple[dict, bytes, list[dict]]:
        async with chromium_page(tmp_path / "chromium-profile") as page:
            await page.send("Page.navigate", url=f"{url}/ui")
            await page.wait_for("document.readyState === 'complete' && document.querySelectorAll('#legend [data-label]').length > 0")
            await page.evaluate(f"document.getElementById('input').value = {json.dumps(TEXT)}; document.getElementById('tag').click()")
            await page.wait_for("document.getElementById('result').dataset.state === 'done'")
            state = json.loads(await page.evaluate(PAGE_STATE))
            screenshot = await page.send("Page.captureScreenshot", format="png")
            return state, base64.b64decode(screenshot["data"]), page.exceptions

    state, png, exceptions = asyncio.run(drive())
    (tmp_path / "ui.png").write_bytes(png)
    print(f"screenshot: {tmp_path / 'ui.png'}")

    assert not exceptions, exceptions
    assert [{key: mark[key] for key in ("text", "label", "start", "end")} for mark in state["marks"]] == expected
    assert state["shown"] == TEXT, "the whole text is shown, highlighted or not"
    assert (state["direction"], state["lang"], state["inputDir"]) == ("rtl", "ar", "rtl")
    assert state["legend"] == labels
    colours = {}
    for mark in state["marks"]:
        assert colours.setdefault(mark["label"], mark["colour"]) == mark["colour"], "one colour per label"
    assert len(set(colours.values())) == len(colours), "different labels, different colours"
    assert [row[1:5] for row in state["rows"]] == [[e["text"], e["label"], str(e["start"]), str(e["end"])] for e in expected]
    assert all(resource.startswith(url) for resource in state["resources"]), state["resources"]
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
