"""The explainer (issue 21): GET /api/inspect and /api/metrics, introspect.inspect on its own, and
the page's "Look inside" in a real headless Chromium."""

import json
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from minigpt import ModelConfig  # noqa: E402
from minigpt.config import SampleConfig  # noqa: E402
from minigpt.introspect import WINDOW, attention_maps, inspect  # noqa: E402
from minigpt.model import MiniGPT  # noqa: E402
from minigpt.pretrained import load  # noqa: E402
from minigpt.prompt import prompt_ids  # noqa: E402
from minigpt.runlog import read_metrics  # noqa: E402
from minigpt.serve import create_app  # noqa: E402
from minigpt.tokenizer import CharTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time, Tom had a ki"


@pytest.fixture(scope="module")
def client(tiny_run):
    return TestClient(create_app(tiny_run, max_batch=2, queue_seconds=0.5))


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, tokenizer, _ = load(tiny_run, "cpu")
    return model, tokenizer


def test_inspect_answers_tokens_shapes_and_causal_rows_that_sum_to_one(client, tiny):
    model, tokenizer = tiny
    c = model.config
    data = client.get("/api/inspect", params={"prompt": PROMPT}).json()
    T = len(PROMPT) + 1  # end-of-story first
    assert data["tokens"] == ["<eos>", *PROMPT] and data["ids"] == prompt_ids(tokenizer, PROMPT)
    assert data["first"] == 0 and data["total"] == T and data["attention_before"] is None
    attention = torch.tensor(data["attention"])  # every layer and head: nothing is null
    assert attention.shape == (c.n_layers, c.num_heads, T, T)
    assert torch.allclose(attention.sum(-1), torch.ones(c.n_layers, c.num_heads, T), atol=1e-3)
    assert (attention.triu(1) == 0).all()  # no weight on a later character
    shapes = data["shapes"]
    assert (shapes["B"], shapes["T"], shapes["C"], shapes["H"], shapes["D"], shapes["V"]) == \
        (1, T, c.n_embd, c.num_heads, c.head_size, c.vocab_size)
    stages = {s["dims"]: s["shape"] for s in data["shapes"]["stages"]}
    assert stages["B T C"] == [1, T, c.n_embd] and stages["B H T T"] == [1, c.num_heads, T, T]
    assert stages["B T V"] == [1, T, c.vocab_size] and stages["B T F"] == [1, T, 4 * c.n_embd]
    assert [d["name"] for d in data["residual"]] == ["embeddings", "block 0", "block 1"]
    assert all(len(d["norm"]) == T and d["mean_norm"] > 0 for d in data["residual"])


def test_inspect_is_the_models_own_forward_and_leaves_nothing_on_it(tiny):
    """The same weights as the PNG's attention_maps, the same distribution as the fast path's
    logits, the logit lens of the last depth is the model's own guess, and the model is as it was."""
    model, tokenizer = tiny
    training, kind = model.training, model.config.attention
    data = inspect(model, tokenizer, PROMPT, SampleConfig(temperature=1.0))
    maps, labels = attention_maps(model, tokenizer, PROMPT)
    assert labels == data["tokens"]
    assert torch.allclose(torch.tensor(data["attention"]), maps, atol=1e-5)
    with torch.no_grad():
        model.eval()
        logits, _, _ = model(torch.tensor([prompt_ids(tokenizer, PROMPT)]))  # the fast attention
        model.train(training)
    probs = torch.softmax(logits[0, -1], -1)
    for row in data["next"]:
        assert row["model_p"] == pytest.approx(float(probs[row["id"]]), abs=1e-5)
        assert row["sampled_p"] == pytest.approx(row["model_p"], abs=1e-5)  # temperature 1, no filter
    assert [r["model_p"] for r in data["next"]] == sorted((r["model_p"] for r in data["next"]), reverse=True)
    assert sum(r["model_p"] for r in data["next"]) + data["rest"]["model_p"] == pytest.approx(1, abs=1e-4)
    last = data["residual"][-1]["predicts"]
    assert [g["token"] for g in last] == [r["token"] for r in data["next"][:3]]
    assert model.training == training and model.config.attention == kind
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_sampling_settings_change_sampled_p_and_the_draw_follows_them(client):
    warm = client.get("/api/inspect", params={"prompt": PROMPT, "temperature": 1.0}).json()
    cold = client.get("/api/inspect", params={"prompt": PROMPT, "temperature": 0.3}).json()
    assert [r["model_p"] for r in cold["next"]] == [r["model_p"] for r in warm["next"]]
    assert cold["next"][0]["sampled_p"] > warm["next"][0]["sampled_p"]  # colder: the top likelier
    top2 = client.get("/api/inspect", params={"prompt": PROMPT, "top_k": 2}).json()
    assert [r["sampled_p"] > 0 for r in top2["next"]][:4] == [True, True, False, False]
    assert sum(r["sampled_p"] for r in top2["next"][:2]) == pytest.approx(1, abs=1e-5)
    assert top2["rest"]["sampled_p"] == 0
    greedy = client.get("/api/inspect", params={"prompt": PROMPT, "temperature": 0}).json()
    assert [r["sampled_p"] for r in greedy["next"][:2]] == [1.0, 0.0]
    assert greedy["sample"]["id"] == greedy["next"][0]["id"]
    draws = {client.get("/api/inspect", params={"prompt": PROMPT, "top_k": 2, "seed": s}).json()["sample"]["id"]
             for s in range(12)}
    assert draws <= {r["id"] for r in top2["next"][:2]}  # only what top-k keeps is ever drawn
    again = [client.get("/api/inspect", params={"prompt": PROMPT, "seed": 5}).json()["sample"] for _ in range(2)]
    assert again[0] == again[1]


def test_a_layer_or_head_asked_for_alone(client, tiny):
    model, _ = tiny
    one = client.get("/api/inspect", params={"prompt": "Tom", "layer": 1, "head": 2}).json()
    assert one["layer"] == 1 and one["head"] == 2 and one["attention"][0] is None
    assert [h is None for h in one["attention"][1]] == [h != 2 for h in range(model.config.num_heads)]
    full = client.get("/api/inspect", params={"prompt": "Tom"}).json()
    assert one["attention"][1][2] == full["attention"][1][2]


@pytest.mark.parametrize("params, status", [
    ({"layer": 2}, 422), ({"layer": -1}, 422), ({"head": 4}, 422), ({"layer": "x"}, 422),
    ({"temperature": -0.1}, 422), ({"temperature": 6}, 422), ({"top_k": 0}, 422), ({"top_p": 0}, 422),
    ({"top_p": 1.5}, 422), ({"top": 0}, 422), ({"top": 201}, 422), ({"seed": -1}, 422),
    ({"prompt": "x" * 1001}, 422), ({"prompt": "Tom #1"}, 400), ({"prompt": "\u4e2d"}, 400)])
def test_bad_values_are_4xx_with_one_line(client, params, status):
    response = client.get("/api/inspect", params=params)
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"] and "\n" not in body["error"]


def test_past_the_window_the_weight_before_it_completes_each_row():
    """A prompt longer than the view: the last WINDOW tokens, each row plus its weight on the
    tokens before them sums to 1 (an untrained model with a long block is enough)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text("abc ")
    model = MiniGPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=160, n_embd=16, num_heads=2,
                                n_layers=1, dropout=0.0))
    data = inspect(model, tokenizer, "abc " * 50, layer=0, top=3)
    assert data["total"] == 160 and data["first"] == 160 - WINDOW and len(data["tokens"]) == WINDOW
    rows = torch.tensor(data["attention"][0])
    before = torch.tensor(data["attention_before"][0])
    assert torch.allclose(rows.sum(-1) + before, torch.ones(2, WINDOW), atol=2e-3)
    assert before[0, 0] > before[0, -1] > 0  # the first shown query has the most behind it
    assert len(data["next"]) == 3 and data["shapes"]["T"] == 160


@pytest.mark.parametrize("kind, vocab", [("bpe", 300), ("word", 60)])
def test_inspect_shows_the_pieces_of_a_subword_or_word_model(kind, vocab):
    from conftest import make_stories
    from minigpt.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(kind, make_stories(50), vocab)
    torch.manual_seed(0)
    model = MiniGPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_embd=16, num_heads=2,
                                n_layers=2, dropout=0.0))
    prompt = "Once upon a time, Lily had a kite."
    data = inspect(model, tokenizer, prompt, top=5, seed=1)
    assert data["tokens"][0] == "<eos>" and "".join(data["tokens"][1:]) == prompt
    assert len(data["tokens"]) < len(prompt)  # pieces, not characters
    assert data["tokens"][1:] == [tokenizer.piece(i) for i in tokenizer.encode(prompt)]
    T = len(data["tokens"])
    assert torch.tensor(data["attention"]).shape == (2, 2, T, T)
    assert data["shapes"]["V"] == tokenizer.vocab_size and len(data["next"]) == 5
    assert data["sample"]["token"] == ("<eos>" if data["sample"]["id"] == 0 else tokenizer.piece(data["sample"]["id"]))


def test_metrics_serves_the_runs_curves_and_an_export_brings_them(client, tiny_run, tmp_path):
    records = client.get("/api/metrics").json()["records"]
    assert [r["step"] for r in records] == [r["step"] for r in read_metrics(tiny_run)] == [60, 120]
    assert all(r["val_bpc"] > 0 and r["train_bpc"] > 0 and r["lr"] > 0 for r in records)
    from minigpt.pretrained import export, run_summary

    out = export(tiny_run, tmp_path / "model")
    assert [r["step"] for r in read_metrics(out)] == [60, 120]
    assert run_summary(out) == run_summary(tiny_run)  # the summary of config.json still rules
    bundled = TestClient(create_app("bundled", max_batch=1, engine_thread=False)).get("/api/metrics").json()
    assert bundled["run"] == "tinystories-char" and bundled["records"][-1]["step"] == 14860


def test_metrics_of_a_run_still_training_skip_a_torn_line(tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 180, "val_bpc": NaN}\n{"step": 240, "val_b')
    records = TestClient(create_app(run, max_batch=1, engine_thread=False)).get("/api/metrics").json()["records"]
    assert [r["step"] for r in records] == [60, 120, 180] and records[-1]["val_bpc"] is None


def test_the_openapi_page_documents_inspect(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/inspect"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "prompt", "temperature", "top_k", "top_p", "layer", "head", "top", "seed"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Inspection")
    assert "attention" in schema["components"]["schemas"]["Inspection"]["properties"]
    assert client.get("/static/explainer.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../serve.py").status_code == 404
    assert client.get("/static/index.html").status_code == 404  # only the page's own files


# --- the page in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(not CHROMIUM and not os.environ.get("MINIGPT_REQUIRE_BROWSER"),
                                   reason="needs Chromium (apt-get install chromium); .ci/run installs it")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def served(tiny_run):
    """The tiny run served on a free port, and a client asking the same server."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(tiny_run, max_batch=2), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(served):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "MINIGPT_REQUIRE_BROWSER is set but Chromium is missing"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield chromium
        chromium.close()


def _ask(base: str, **params) -> dict:
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(f"{base}/api/inspect?{urllib.parse.urlencode(params)}", timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def open_page(browser, served):
    """open_page(width, height) -> (page, errors) on the served app, ready; after the test every
    page is closed, and none may have logged an error (a script error or a failed request)."""
    pages = []

    def open_(width=1100, height=900):
        page = browser.new_page(viewport={"width": width, "height": height})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(served + "/")
        page.wait_for_selector("#next-chart g.bar")
        page.wait_for_selector("#layer-picker button")
        pages.append((page, errors))
        return page, errors

    yield open_
    for page, errors in pages:
        page.close()
        assert not errors, errors


def browser_test(test):
    """A test in headless Chromium: slow, and skipped only where Chromium is missing and not required."""
    return needs_browser(pytest.mark.slow(test))


def _type(page, text: str) -> None:
    """Type into the box like a user (the last key's question is the one drawn), and wait for it."""
    seen = page.evaluate("document.body.dataset.inspected")
    page.fill("#prompt", text[:-1])
    page.type("#prompt", text[-1])
    page.wait_for_function(f"document.body.dataset.inspected !== '{seen}' && "
                           "document.querySelector('#tokens').children.length === "
                           f"{len(text) + 1}")
    page.wait_for_timeout(150)  # no later answer replaces it


def _slide(page, id_: str, value) -> None:
    seen = page.evaluate("document.body.dataset.inspected")
    page.evaluate(f"(() => {{ const s = document.getElementById('{id_}'); s.value = '{value}'; "
                  "s.dispatchEvent(new Event('input', {bubbles: true})); })()")
    page.wait_for_function(f"document.body.dataset.inspected !== '{seen}'")
    page.wait_for_timeout(150)


def _bars(page) -> list[dict]:
    return page.evaluate("""[...document.querySelectorAll('#next-chart g.bar[data-token]')].map(g => ({
        token: g.dataset.token, model_p: Number(g.dataset.modelP), sampled_p: Number(g.dataset.sampledP)}))""")


@browser_test
def test_browser_typing_and_sliders_redraw_the_next_character_chart(open_page, served):
    page, errors = open_page()
    _slide(page, "temperature", "1")
    _type(page, "Once upon a time, Tom had a k")
    before = _bars(page)
    api = _ask(served, prompt="Once upon a time, Tom had a k", temperature=1.0, layer=0, top=12)
    assert [(b["token"], b["model_p"]) for b in before] == [(r["token"], r["model_p"]) for r in api["next"]]
    _type(page, "Once upon a time, Tom had a ki")
    after = _bars(page)
    assert after != before and [b["token"] for b in after] == \
        [r["token"] for r in _ask(served, prompt="Once upon a time, Tom had a ki", layer=0, top=12)["next"]]
    _slide(page, "top_k", "2")  # top-k keeps two: the chart's sampled bars say so
    kept = _bars(page)
    assert [b["model_p"] for b in kept] == [b["model_p"] for b in after]
    assert [b["sampled_p"] > 0 for b in kept][:3] == [True, True, False]
    _slide(page, "top_k", "0")
    _slide(page, "temperature", "0.3")
    cold = _bars(page)
    assert cold[0]["sampled_p"] > after[0]["sampled_p"] and cold[0]["model_p"] == after[0]["model_p"]
    page.type("#prompt", "#")  # a character the model does not know: said in one line, chart kept
    page.wait_for_function("document.getElementById('inside-status').textContent.includes('#')")
    assert page.text_content("#inside-status").startswith("error: the model's vocabulary has no '#'")
    assert _bars(page) == cold
    errors.remove("Failed to load resource: the server responded with a status of 400 (Bad Request)")
    page.screenshot(path=str(ARTIFACTS / "explainer-desktop.png"), full_page=True)


@browser_test
def test_browser_hovering_a_character_shades_what_it_attends_to(open_page, served):
    page, _ = open_page()
    prompt = "Lily had a cat. Lily"
    _type(page, prompt)
    page.hover("#tokens .tok[data-index='18']")
    shade = page.evaluate("""[...document.querySelectorAll('#tokens .tok')].map(s => ({
        cls: s.className, weight: Number(s.dataset.weight), bg: s.style.background}))""")
    assert "query" in shade[18]["cls"] and all("future" in s["cls"] for s in shade[19:])
    assert not any("future" in s["cls"] for s in shade[:19])
    api = _ask(served, prompt=prompt, layer=0)
    layer = torch.tensor(api["attention"][0])  # (H, T, T)
    mean = layer[:, 18].mean(0)
    assert torch.allclose(torch.tensor([s["weight"] for s in shade]), mean, atol=1e-4)
    assert sum(s["weight"] for s in shade) == pytest.approx(1, abs=1e-3)
    assert all(s["bg"] for s in shade[:19]) and not any(s["bg"] for s in shade[19:])
    page.click("#head-grid .head[data-head='1']")  # one head: its own row
    page.hover("#tokens .tok[data-index='18']")
    one = page.evaluate("[...document.querySelectorAll('#tokens .tok')].map(s => Number(s.dataset.weight))")
    assert torch.allclose(torch.tensor(one), layer[1, 18], atol=1e-4)
    assert "head 1 of layer 0" in page.text_content("#attention-caption")
    page.click("#layer-picker button[data-layer='1']")  # another layer: asked for and drawn
    page.wait_for_function("document.querySelector('#attention-caption').textContent.includes('layer 1')")
    page.hover("#tokens .tok[data-index='18']")
    deep = page.evaluate("[...document.querySelectorAll('#tokens .tok')].map(s => Number(s.dataset.weight))")
    assert torch.allclose(torch.tensor(deep), torch.tensor(_ask(served, prompt=prompt, layer=1)["attention"][1][1][18]),
                          atol=1e-4)
    assert page.locator("#head-grid canvas").count() == 4
    page.click("#tokens .tok[data-index='5']")  # a tap pins the query: it stays when the pointer leaves
    page.mouse.move(0, 0)
    assert "query" in page.get_attribute("#tokens .tok[data-index='5']", "class")
    assert "Reading \" \" (position 5)" in page.text_content("#attention-caption")


@browser_test
def test_browser_one_step_appends_a_character_the_distribution_allowed(open_page, served):
    page, _ = open_page()
    _slide(page, "top_k", "3")
    prompt = "Once upon a time, Mia had a "
    _type(page, prompt)
    allowed = {r["token"] for r in _ask(served, prompt=prompt, top_k=3, layer=0, temperature=0.8)["next"][:3]}
    page.fill("#seed", "4")  # step i draws with seed 4 + i: the same steps every run
    appended = []
    for i in range(3):
        before = page.input_value("#prompt")
        page.click("#one-step")
        page.wait_for_function(f"document.querySelectorAll('#step-log li').length === {i + 1}")
        entry = page.locator("#step-log li").first
        drawn = entry.get_attribute("data-token")
        assert float(entry.get_attribute("data-sampled-p")) > 0
        if i == 0:
            assert drawn in allowed
        if drawn == "<eos>":  # the model may end the story: logged, nothing appended
            assert "ended the story" in entry.text_content() and page.input_value("#prompt") == before
            continue
        page.wait_for_function(f"document.getElementById('prompt').value.length === {len(before) + 1}")
        assert page.input_value("#prompt") == before + drawn
        appended.append(before)
    assert appended  # at least one step wrote a character
    page.click("#undo-step")
    assert page.input_value("#prompt") == appended[-1]


@browser_test
def test_browser_shapes_curves_and_a_phone_sized_screen(open_page, served, tiny_run):
    page, _ = open_page(width=390, height=844)  # a phone
    _type(page, "Tom had a kite")
    shapes = page.text_content("#shapes-panel")
    assert "(1, 15, 32)" in shapes and "(1, 4, 15, 15)" in shapes and "(1, 15, 128)" in shapes
    assert page.locator("#depth-table tr").count() == 4  # a header, the embeddings, two blocks
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    for testid in ("next-chart", "attention-view", "shapes-panel", "loss-chart"):
        box = page.get_by_test_id(testid).bounding_box()
        assert box and box["width"] > 200 and box["x"] >= 0 and box["x"] + box["width"] <= 390, testid
    page.wait_for_selector("#loss-chart polyline")
    chart = page.get_by_test_id("loss-chart")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 5, box["y"] + box["height"] / 2)
    tip = page.text_content("#loss-tip")
    last = read_metrics(tiny_run)[-1]
    assert tip.startswith("step 120:") and f"held-out {last['val_bpc']:.3f}" in tip
    page.screenshot(path=str(ARTIFACTS / "explainer-phone.png"), full_page=True)
    assert (ARTIFACTS / "explainer-phone.png").stat().st_size > 10_000


def test_a_subword_models_trailing_space_is_held_back_as_generation_does():
    from conftest import make_stories
    from minigpt.tokenizer import train_tokenizer

    tokenizer = train_tokenizer("bpe", make_stories(50), 300)
    torch.manual_seed(0)
    model = MiniGPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_embd=16, num_heads=2,
                                n_layers=1, dropout=0.0))
    data = inspect(model, tokenizer, "Once upon a ", top=tokenizer.vocab_size, seed=2)
    assert data["held"] == " " and "".join(data["tokens"][1:]) == "Once upon a"
    assert all((r["sampled_p"] > 0) <= r["token"].startswith(" ") for r in data["next"])
    assert sum(r["sampled_p"] for r in data["next"]) == pytest.approx(1, abs=1e-4)
    assert data["sample"]["token"].startswith(" ")
    plain = inspect(model, tokenizer, "Once upon a", top=5)
    assert plain["held"] == "" and plain["tokens"] == data["tokens"]
