"""The web API with the framework's test client, and the page in a real headless Chromium."""

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from minigpt.serve import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(tiny_run):
    return TestClient(create_app(tiny_run, max_concurrent=2, queue_seconds=0.5))


def test_health_model_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    facts = client.get("/api/model").json()
    assert facts["parameters"] > 1000 and facts["step"] == 120 and facts["held_out_bits_per_char"] > 0
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text and "EventSource" in page.text
    assert client.get("/docs").status_code == 200
    assert "/api/generate" in client.get("/openapi.json").json()["paths"]


def test_generate_is_reproducible_with_a_seed(client):
    body = {"prompt": "Once upon a time", "max_new_chars": 40, "seed": 3, "temperature": 0.8}
    a, b = client.post("/api/generate", json=body).json(), client.post("/api/generate", json=body).json()
    assert a == b and a["prompt"] == "Once upon a time" and 0 < a["chars"] <= 40
    assert a["chars"] == len(a["text"]) and a["finished"] in ("length", "end of story")


def test_stream_sends_characters_then_done(client):
    with client.stream("GET", "/api/stream", params={"prompt": "Tom", "max_new_chars": 25, "seed": 1}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e for e in raw.split("\n\n") if e.strip()]
    assert events[-1].startswith("event: done")
    pieces = [json.loads(e.removeprefix("data: "))["text"] for e in events[:-1]]
    assert 0 < len(pieces) <= 25 and all(len(p) == 1 for p in pieces)
    same = client.post("/api/generate", json={"prompt": "Tom", "max_new_chars": 25, "seed": 1}).json()
    assert "".join(pieces) == same["text"]


@pytest.mark.parametrize("body, status, message", [
    ({"temperature": -1}, 422, "temperature"), ({"temperature": 99}, 422, "temperature"),
    ({"top_p": 0}, 422, "top_p"), ({"top_p": 1.5}, 422, "top_p"), ({"top_k": 0}, 422, "top_k"),
    ({"max_new_chars": 0}, 422, "max_new_chars"), ({"max_new_chars": 10**6}, 422, "max_new_chars"),
    ({"prompt": "x" * 5000}, 422, "prompt"), ({"seed": -3}, 422, "seed"),
    ({"temperature": "hot"}, 422, "temperature"), ({"prompt": "Hi #"}, 400, "'#'"),
])
def test_bad_parameters_get_a_clear_4xx(client, body, status, message):
    for response in (client.post("/api/generate", json=body),
                     client.get("/api/stream", params={k: str(v) for k, v in body.items()})):
        assert response.status_code == status, response.text
        assert message in response.json()["error"]


def test_not_json_is_a_4xx(client):
    response = client.post("/api/generate", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "error" in response.json()


def test_busy_past_the_concurrency_cap(tiny_run, monkeypatch):
    import minigpt.serve as serve_module

    def slow_write(*args):  # a story that takes a second to write holds the only slot
        time.sleep(1.0)
        return ["x"]

    monkeypatch.setattr(serve_module, "_write", slow_write)
    client = TestClient(create_app(tiny_run, max_concurrent=1, queue_seconds=0.2))
    results = []

    def long_story():
        results.append(client.post("/api/generate", json={"prompt": "Once"}).status_code)
    worker = threading.Thread(target=long_story)
    worker.start()
    time.sleep(0.3)
    busy = client.post("/api/generate", json={"max_new_chars": 5})
    worker.join()
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert results == [200]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("MINIGPT_REQUIRE_BROWSER"),
                    reason="needs Chromium (apt-get install chromium); .ci/run installs it")
def test_real_browser_types_a_prompt_and_sees_the_story_stream(tiny_run, tmp_path):
    import uvicorn
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "MINIGPT_REQUIRE_BROWSER is set but Chromium is missing"
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_run), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#facts dd")
            page.fill("#prompt", "Lily had a")
            page.fill("#seed", "4")
            page.click("#generate")
            page.wait_for_function("document.getElementById('continuation')?.textContent.length > 0")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('done')",
                                   timeout=60_000)
            story = page.text_content("#story")
            status = page.text_content("#status")
            page.click("#show-next")
            page.wait_for_selector("#next-table td")
            next_rows = page.locator("#next-table tr").count()
            page.click("#show-attention")
            page.wait_for_function("document.getElementById('attention').naturalWidth > 0")
            page.screenshot(path=str(artifacts / "browser.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert story.startswith("Lily had a") and len(story) > len("Lily had a")
    count = int(status.split()[1])
    assert count == len(story) - len("Lily had a")
    assert (artifacts / "browser.png").stat().st_size > 10_000
    assert next_rows == 9  # a header and the 8 likeliest characters


def test_next_character_and_attention_endpoints(client):
    from io import BytesIO

    from matplotlib.image import imread

    data = client.get("/api/next", params={"prompt": "Once upon a ti", "top": 5, "temperature": 0.5}).json()
    assert len(data["rows"]) == 5 and sum(r["prob"] for r in data["rows"]) <= 1.0 + 1e-6
    assert data["rows"][0]["sampled"] >= data["rows"][0]["prob"]  # colder: the top gets likelier
    png = client.get("/api/attention.png", params={"prompt": "Tom had a kite"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert imread(BytesIO(png.content)).shape[2] in (3, 4)
    assert client.get("/api/attention.png", params={"prompt": "Tom", "layer": 9}).status_code == 400
    assert client.get("/api/next", params={"top_p": 2}).status_code == 422
    assert client.get("/api/next", params={"prompt": "#"}).status_code == 400


def test_client_disconnect_stops_the_generation(tiny_run, monkeypatch):
    import minigpt.serve as serve_module

    produced = []

    def endless(model, tokenizer, prompt, cfg, generator):  # a story that would never end
        while True:
            time.sleep(0.01)
            produced.append("a")
            yield "a"

    monkeypatch.setattr(serve_module, "stream", endless)
    client = TestClient(create_app(tiny_run, max_concurrent=1, queue_seconds=3))
    with client.stream("GET", "/api/stream", params={"max_new_chars": 2000}) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                break  # the first character arrived: now the client goes away
    time.sleep(0.5)
    count = len(produced)
    time.sleep(0.5)
    assert len(produced) - count <= 1  # the writer stopped
    assert len(produced) < 2000
    monkeypatch.setattr(serve_module, "stream", lambda *a: iter("ok"))
    assert client.post("/api/generate", json={"max_new_chars": 2}).status_code == 200  # slot freed
