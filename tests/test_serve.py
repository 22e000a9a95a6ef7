"""The web API with the framework's test client, and the page in a real headless Chromium."""

import dataclasses
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
    return TestClient(create_app(tiny_run, max_batch=4, queue_seconds=0.5))


def test_health_model_page_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok", "streams": 0, "waiting": 0}
    facts = client.get("/api/model").json()
    assert facts["parameters"] > 1000 and facts["step"] == 120 and facts["held_out_bits_per_char"] > 0
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text and "EventSource" in page.text
    assert client.get("/docs").status_code == 200
    assert "/api/generate" in client.get("/openapi.json").json()["paths"]


def test_the_bundled_model_shows_its_measured_score_beside_trainings_estimate():
    facts = TestClient(create_app("bundled", max_batch=1, engine_thread=False)).get("/api/model").json()
    assert facts["eval_bits_per_char"] == 0.902  # `minigpt eval`, as in the README and model card
    assert facts["held_out_bits_per_char"] > facts["eval_bits_per_char"]  # short contexts score worse


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


@pytest.mark.parametrize("body, message", [
    ({"seed": False}, "seed: "), ({"seed": True}, "seed: "), ({"max_new_chars": True}, "max_new_chars: "),
    ({"top_k": 3.5}, "top_k: "), ({"seed": "3"}, "seed: "), ({"temperature": "0.5"}, "temperature: "),
    ({"temperature": False}, "temperature: "), ({"prompt": 5}, "prompt: "),
    ({"temprature": 0.5}, "temprature: unknown field"), ([1, 2], "must be a JSON object"),
])
def test_a_json_body_has_strict_types_and_no_unknown_fields(client, body, message):
    """true is not 1 and "3" is not 3 in a JSON body (3.0 is 3, as in JSON Schema); a typo'd
    field is an error, not a default."""
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422 and list(response.json()) == ["error"]
    assert message in response.json()["error"]


@pytest.mark.parametrize("content, content_type, message", [
    (b"{nope", "application/json", "not valid JSON"), (b"", "application/json", "must be a JSON object"),
    (b"prompt=Tom", "application/x-www-form-urlencoded", "must be a JSON object"),
    (b"hello", "text/plain", "must be a JSON object"), (b'{"prompt": "Tom"}', "text/plain", "JSON object"),
])
def test_a_body_that_is_not_a_json_object_gets_the_documented_shape(client, content, content_type, message):
    response = client.post("/api/generate", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422 and list(response.json()) == ["error"], response.text
    assert message in response.json()["error"] and "\n" not in response.json()["error"]


def test_a_body_past_the_limit_is_a_413_read_no_further(client):
    from minigpt.webapi import MAX_BODY_BYTES

    huge = b'{"prompt": "' + b"a" * (2 * MAX_BODY_BYTES) + b'"}'
    response = client.post("/api/generate", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"].startswith("the body is larger than")
    padded = b" " * (MAX_BODY_BYTES - 100) + b'{"prompt": "Once", "max_new_chars": 3, "seed": 1}'  # within it: read
    assert client.post("/api/generate", content=padded, headers={"Content-Type": "application/json"}).json()["chars"] == 3


def test_unknown_paths_and_methods_get_the_documented_shape(client):
    missing, wrong = client.get("/api/nothing"), client.delete("/api/generate")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found: GET /api/nothing"}
    assert wrong.status_code == 405 and wrong.json()["error"].startswith("Method Not Allowed")
    assert wrong.headers["allow"] == "POST"


def test_a_failure_inside_is_a_503_in_the_documented_shape_never_a_500(tiny_run, monkeypatch):
    import minigpt.serve as serve_module

    app = create_app(tiny_run, max_batch=1, engine_thread=False)
    monkeypatch.setattr(serve_module, "prompt_text", lambda _p: 1 / 0)  # a bug, say
    response = TestClient(app, raise_server_exceptions=False).get("/api/next", params={"prompt": "Tom"})
    assert response.status_code == 503
    assert response.json() == {"error": "the server failed (ZeroDivisionError: division by zero); "
                                        "please report it"}


def test_serve_without_fastapi_is_the_one_line_install_message(tiny_run):
    """As for the other optional parts (matplotlib, tokenizers): one line, exit 2, no traceback."""
    import subprocess
    import sys

    for missing in ("fastapi", "uvicorn"):
        code = (f"import sys; sys.modules[{missing!r}] = None\n"  # `import {missing}` fails
                "from minigpt.cli import main; sys.exit(main(sys.argv[1:]))")
        result = subprocess.run([sys.executable, "-c", code, "serve", "--checkpoint", str(tiny_run),
                                 "--port", str(_free_port())], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines() == [
            "minigpt serve: error: serving needs fastapi and uvicorn: pip install fastapi uvicorn"]


@pytest.fixture
def endless(monkeypatch):
    """Stories that never end by themselves and take ~5 ms a character: a request holds its
    row for as long as the test needs."""
    import minigpt.serve as serve_module
    from minigpt.engine import Engine

    real_sample_config, real_step = serve_module.StoryParams.sample_config, Engine.step
    monkeypatch.setattr(serve_module.StoryParams, "sample_config",  # GenerateRequest's too
                        lambda self: dataclasses.replace(real_sample_config(self), stop_at_eos=False))

    def slow_step(self):
        time.sleep(0.005)
        return real_step(self)

    monkeypatch.setattr(Engine, "step", slow_step)


def _open_stream(client, **params):
    """Start an SSE story in another thread and read its first event; returns (thread, stop)."""
    stop, first = threading.Event(), threading.Event()

    def reader():
        with client.stream("GET", "/api/stream", params={"max_new_chars": 2000, **params}) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    first.set()
                if stop.is_set():
                    break  # the client goes away

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert first.wait(10), "the story did not start"
    return thread, stop


def test_busy_after_the_documented_wait_and_at_the_queue_bound(tiny_run, endless):
    app = create_app(tiny_run, max_batch=1, queue_seconds=0.3, max_waiting=1)
    client = TestClient(app)
    thread, stop = _open_stream(client)  # holds the only row
    waited = []

    def second():  # waits in the queue, then gives up after queue_seconds
        start = time.perf_counter()
        waited.append((client.post("/api/generate", json={"max_new_chars": 5}), time.perf_counter() - start))
    worker = threading.Thread(target=second)
    worker.start()
    time.sleep(0.1)
    third = client.post("/api/generate", json={"max_new_chars": 5})  # the queue (1) is full
    worker.join()
    assert third.status_code == 503 and "busy" in third.json()["error"]
    response, seconds = waited[0]
    assert response.status_code == 503 and "busy" in response.json()["error"]
    assert 0.3 <= seconds < 2.0  # the documented wait, not however long the queue is
    stop.set()
    thread.join(5)
    for _ in range(100):  # the row is freed at the engine's next step
        if client.get("/healthz").json()["streams"] == 0:
            break
        time.sleep(0.02)
    assert client.post("/api/generate", json={"prompt": "Once", "max_new_chars": 5, "seed": 1}).json()["chars"] == 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("MINIGPT_REQUIRE_BROWSER"),
                    reason="needs Chromium (apt-get install chromium); .ci/run installs it")
@pytest.mark.slow
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
            page.screenshot(path=str(artifacts / "browser.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert story.startswith("Lily had a") and len(story) > len("Lily had a")
    count = int(status.split()[1])
    assert count == len(story) - len("Lily had a")
    assert (artifacts / "browser.png").stat().st_size > 10_000


def test_next_character_and_attention_endpoints(client):
    from io import BytesIO

    from matplotlib.image import imread

    data = client.get("/api/next", params={"prompt": "Once upon a ti", "top": 5, "temperature": 0.5}).json()
    assert len(data["rows"]) == 5 and sum(r["prob"] for r in data["rows"]) <= 1.0 + 1e-6
    assert data["rows"][0]["sampled"] >= data["rows"][0]["prob"]  # colder: the top gets likelier
    png = client.get("/api/attention.png", params={"prompt": "Tom had a kite"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert imread(BytesIO(png.content)).shape[2] in (3, 4)
    beyond = client.get("/api/attention.png", params={"prompt": "Tom", "layer": 9})  # 2 layers
    assert beyond.status_code == 422 and beyond.json()["error"].startswith("layer: ")
    assert client.get("/api/next", params={"top_p": 2}).status_code == 422
    assert client.get("/api/next", params={"prompt": "#"}).status_code == 400


def test_a_client_that_leaves_frees_its_row(tiny_run, endless):
    app = create_app(tiny_run, max_batch=2, queue_seconds=3)
    client = TestClient(app)
    engine = app.state.engine
    thread, stop = _open_stream(client)
    assert client.get("/healthz").json()["streams"] == 1
    (live,) = engine.live
    stop.set()  # the client goes away after its first characters
    thread.join(5)
    for _ in range(100):
        if not engine.live:
            break
        time.sleep(0.02)
    assert not engine.live and live.finished == "cancelled"
    assert len(live.tokens) < 2000  # it stopped, long before its limit
    assert client.post("/api/generate", json={"prompt": "Once", "max_new_chars": 3, "seed": 1}).json()["chars"] == 3


def test_streams_join_a_running_batch_and_get_their_own_stories(client):
    """Requests that overlap share the engine's batch; each story is the one it gets alone."""
    bodies = [{"prompt": p, "max_new_chars": 60, "seed": seed, "temperature": t}
              for p, seed, t in (("Tom", 1, 0.8), ("Lily had", 2, 1.0), ("Once", 3, 0.5), ("A", 4, 0.8))]
    alone = [client.post("/api/generate", json=b).json() for b in bodies]
    together = [None] * len(bodies)

    def ask(i):
        time.sleep(0.01 * i)  # arrive at different steps
        together[i] = client.post("/api/generate", json=bodies[i]).json()
    workers = [threading.Thread(target=ask, args=(i,)) for i in range(len(bodies))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert together == alone


def test_look_inside_never_fails_beside_stories(client):
    """/api/next and /api/attention.png while stories are written: never a 500 (they once raced
    on state left on the attention modules)."""
    codes = []

    def story():
        for i in range(6):
            codes.append(client.post("/api/generate", json={"max_new_chars": 40, "seed": i}).status_code)

    def odds():
        for i in range(12):
            codes.append(client.get("/api/next", params={"prompt": "Once upon a ti"[: i + 2]}).status_code)

    def maps():
        for i in range(4):
            codes.append(client.get("/api/attention.png", params={"prompt": "Tom had"[: i + 3]}).status_code)
    workers = [threading.Thread(target=f) for f in (story, story, odds, odds, maps)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(codes) == 6 + 6 + 12 + 12 + 4 and set(codes) == {200}


@pytest.mark.slow
def test_the_serve_command_writes_stories_and_stops_on_sigterm(tiny_run):
    """`minigpt serve` itself: the engine in the main thread, the web server in another; two
    overlapping requests are answered, and SIGTERM stops it cleanly (exit 0)."""
    import signal
    import subprocess
    import sys
    import urllib.request

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "minigpt", "serve", "--checkpoint", str(tiny_run),
                               "--port", str(port), "--max-batch", "4", "--threads", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        answers = []

        def ask(seed):
            body = json.dumps({"prompt": "Once", "max_new_chars": 30, "seed": seed}).encode()
            request = urllib.request.Request(base + "/api/generate", data=body,
                                             headers={"Content-Type": "application/json"})
            answers.append(json.load(urllib.request.urlopen(request, timeout=30)))
        workers = [threading.Thread(target=ask, args=(s,)) for s in (1, 2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert len(answers) == 2 and all(0 < a["chars"] <= 30 for a in answers)
        assert json.load(urllib.request.urlopen(base + "/api/model"))["max_batch"] == 4
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert "up to 4 stories at once" in out and out.strip().endswith("stopping")


def test_serve_on_a_port_in_use_is_a_one_line_error(tiny_run):
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "minigpt", "serve", "--checkpoint", str(tiny_run),
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"minigpt serve: error: cannot listen on 127.0.0.1:{port} (in use): choose another --port (or --host)"]
