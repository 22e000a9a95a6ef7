"""The web API against its own OpenAPI schema: schemathesis fuzzes every operation in-process
(no network, no port), and a few answers that once were 500s are pinned down by hand.

Every answer must be 2xx, 4xx or a 503 "busy" (never another 5xx), with a status code and a
content type the schema declares and a body that matches it; errors are {"error": one line}.
"""

import copy
import json
import math
import threading

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from minigpt.serve import create_app  # noqa: E402

FUZZ_NEW_CHARS = 12  # the fuzzed stories' length bound, so that each answer is quick
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A model made here, smaller than conftest's tiny_run: 2 training steps are enough to have
    a run directory with weights, a tokenizer and metrics."""
    from conftest import make_stories, write_txt
    from minigpt import ModelConfig, TrainConfig, train

    root = tmp_path_factory.mktemp("schema")
    data = write_txt(root / "stories.txt", make_stories(60))
    train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1),
          TrainConfig(data=[data], batch_size=4, max_steps=2, eval_interval=2, eval_batches=1,
                      sample_chars=0, threads=1, warmup_steps=1),
          root / "run", log=lambda *a: None)
    return root / "run"


@pytest.fixture(scope="module")
def app(tiny_model):
    return create_app(tiny_model, max_batch=4, queue_seconds=10)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def fuzz_app(tiny_model):
    """An app of its own for schemathesis, which starts and ends its lifespan around each test."""
    return create_app(tiny_model, max_batch=4, queue_seconds=10)


@pytest.fixture(scope="module")
def api_schemas(fuzz_app):
    """The app's own /openapi.json, for negative cases (invalid requests) as it is, and for
    positive ones with one change: stories of at most FUZZ_NEW_CHARS, so that the fuzzer's valid
    requests are quick (the served schema says 2000)."""
    negative = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    served = fuzz_app.openapi()  # the dict /openapi.json serves
    document = fuzz_app.openapi_schema = copy.deepcopy(served)
    document["components"]["schemas"]["GenerateRequest"]["properties"]["max_new_chars"]["maximum"] = \
        FUZZ_NEW_CHARS
    for parameter in document["paths"]["/api/stream"]["get"]["parameters"]:
        if parameter["name"] == "max_new_chars":
            parameter["schema"]["maximum"] = FUZZ_NEW_CHARS
    positive = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    fuzz_app.openapi_schema = served
    for loaded in (positive, negative):
        checks = loaded.config.checks
        # A prompt character the model does not know is a 400 for a schema-valid string (the
        # vocabulary is the model's, and prompts are cleaned before they are read, so the schema
        # cannot state it as a pattern); 503 is "busy", which check_answer tells from a failure.
        checks.positive_data_acceptance.expected_statuses = ["2xx", "400", "503"]
        checks.not_a_server_error.expected_statuses = ["2xx", "4xx", "503"]
    return {POSITIVE: positive, NEGATIVE: negative}


# Every operation of the schema (test_the_schema_declares_every_status_and_content_type checks the
# list). schemathesis's own `from_fixture(...).parametrize()` needs a pytest private that pytest 9
# no longer has, so each operation's strategy is drawn with hypothesis's @given here instead.
OPERATIONS = [("GET", "/healthz"), ("GET", "/api/model"), ("GET", "/api/metrics"), ("POST", "/api/generate"),
              ("GET", "/api/stream"), ("GET", "/api/next"), ("GET", "/api/inspect"), ("GET", "/api/attention.png")]
CASES = [(method, path, mode) for method, path in OPERATIONS for mode in (POSITIVE, NEGATIVE)
         if mode is POSITIVE or path.startswith("/api/") and path not in ("/api/model", "/api/metrics")]


def check_answer(response) -> None:
    """2xx, 4xx or 503 busy, and every error in the documented shape."""
    status = response.status_code
    assert status < 500 or status == 503, f"{status}: {response.text[:500]}"
    if status >= 400:
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
        assert "\n" not in body["error"]
        if status == 503:
            assert body["error"].startswith("busy"), body  # no bug answered as "the server failed"


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_every_answer_is_declared_and_never_a_server_error(api_schemas, method, path, mode):
    """Valid requests (positive) and invalid ones (negative: wrong types, out of bounds, unknown
    fields): each answer is declared, matches the schema, and is never a server error."""
    seen = []

    @given(case=api_schemas[mode][path][method].as_strategy(generation_mode=mode))
    @settings(max_examples=20, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def answer_is_declared(case):
        response = case.call()
        check_answer(response)
        case.validate_response(response)  # status, content type, headers and body per the schema
        seen.append(response.status_code)

    answer_is_declared()
    assert seen
    if mode is NEGATIVE:
        assert any(400 <= code < 500 for code in seen)


def test_the_schema_declares_every_status_and_content_type(app):
    paths = app.openapi()["paths"]
    assert sorted((m.upper(), p) for p in paths for m in paths[p]) == sorted(OPERATIONS)
    json_only = {"application/json"}
    for path, own in [("/api/generate", "application/json"), ("/api/next", "application/json"),
                      ("/api/inspect", "application/json"), ("/api/stream", "text/event-stream"),
                      ("/api/attention.png", "image/png")]:
        (operation,) = paths[path].values()
        responses = operation["responses"]
        body_limit = {"413"} if path == "/api/generate" else set()  # the only one with a body
        assert set(responses) == {"200", "400", "422", "503"} | body_limit, path
        assert set(responses["200"]["content"]) == {own}, path
        for code in ("400", "422", "503", *body_limit):
            assert set(responses[code]["content"]) == json_only, (path, code)
            assert responses[code]["content"]["application/json"]["schema"]["required"] == ["error"]
    for path in ("/healthz", "/api/model", "/api/metrics"):
        assert set(paths[path]["get"]["responses"]) == {"200", "503"}
    body = app.openapi()["components"]["schemas"]["GenerateRequest"]
    assert body["additionalProperties"] is False
    fields = body["properties"]
    assert fields["max_new_chars"]["minimum"] == 1 and fields["max_new_chars"]["maximum"] == 2000
    assert fields["temperature"]["minimum"] == 0 and fields["temperature"]["maximum"] == 5
    top_p = fields["top_p"]["anyOf"][0]
    assert top_p["exclusiveMinimum"] == 0 and top_p["maximum"] == 1
    assert fields["top_k"]["anyOf"][0]["minimum"] == 1 and fields["seed"]["anyOf"][0]["minimum"] == 0


def test_a_tiny_top_p_is_the_likeliest_character_alone_with_finite_numbers(client):
    """top_p=1e-300 is 0 in float32: the filter once kept nothing, the odds were NaN and the
    answer a 500 (JSON has no NaN)."""
    for top_p in ("1e-300", "5e-324", "1e-45"):
        response = client.get("/api/next", params={"prompt": "Once", "top_p": top_p, "top": 5})
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        numbers = [r[k] for r in rows for k in ("prob", "sampled")]
        assert all(math.isfinite(x) for x in numbers)
        assert [r["sampled"] for r in rows] == [1.0, 0.0, 0.0, 0.0, 0.0]
    story = client.post("/api/generate", json={"prompt": "Once", "top_p": 1e-300, "max_new_chars": 8})
    greedy = client.post("/api/generate", json={"prompt": "Once", "temperature": 0, "max_new_chars": 8})
    assert story.status_code == 200 and story.json()["text"] == greedy.json()["text"]


@pytest.mark.parametrize("field", ["seed", "max_new_chars", "top_k", "temperature", "top_p"])
@pytest.mark.parametrize("value", [False, True])
def test_a_boolean_is_not_a_number(client, field, value):
    response = client.post("/api/generate", json={field: value})
    assert response.status_code == 422 and list(response.json()) == ["error"]
    assert response.json()["error"].startswith(f"{field}: ")
    check_answer(response)


def test_an_invalid_json_body_gets_the_documented_shape(client):
    for content, content_type in [(b"{nope", "application/json"), (b'{"seed": 1', "application/json"),
                                  (b"\xff\xfe", "application/json"), (b"[]", "application/json"),
                                  (b"null", "application/json"), (b"seed=1", "text/plain")]:
        response = client.post("/api/generate", content=content, headers={"Content-Type": content_type})
        assert response.status_code == 422, (content, response.text)
        check_answer(response)


def test_look_inside_views_at_the_same_moment_never_500(client):
    """/api/next, /api/inspect and /api/attention.png at once, beside a story: each is 200, or 503
    busy when more than the look-inside queue's bound wait."""
    answers, start = [], threading.Barrier(7)

    def ask(method, path, **kw):
        start.wait()
        for _ in range(3):
            answers.append(getattr(client, method)(path, **kw))

    workers = [threading.Thread(target=ask, args=("get", "/api/next"), kwargs={"params": {"prompt": "Tom"}}),
               threading.Thread(target=ask, args=("get", "/api/next"), kwargs={"params": {"top_p": "1e-300"}}),
               threading.Thread(target=ask, args=("get", "/api/attention.png"), kwargs={"params": {"prompt": "Tom"}}),
               threading.Thread(target=ask, args=("get", "/api/attention.png"),
                                kwargs={"params": {"prompt": "Lily", "layer": 0}}),
               threading.Thread(target=ask, args=("post", "/api/generate"), kwargs={"json": {"max_new_chars": 30}}),
               threading.Thread(target=ask, args=("get", "/api/next"), kwargs={"params": {"prompt": "Once", "top": 3}}),
               threading.Thread(target=ask, args=("get", "/api/inspect"), kwargs={"params": {"prompt": "Tom", "layer": 0}})]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(answers) == 21
    for response in answers:
        check_answer(response)
    assert {r.status_code for r in answers} <= {200, 503}
    assert sum(r.status_code == 200 for r in answers) >= 14  # 7 askers, 8 may wait: few or no 503s
    pngs = [r for r in answers if r.headers["content-type"] == "image/png"]
    assert len(pngs) == 6 and all(r.content.startswith(b"\x89PNG") for r in pngs)
    odds = [r.json() for r in answers if r.request.url.path == "/api/next"]
    assert all(math.isfinite(row["sampled"]) for o in odds for row in o["rows"])
    json.dumps(odds, allow_nan=False)
    looks = [r.json() for r in answers if r.request.url.path == "/api/inspect" and r.status_code == 200]
    assert looks and all(look["tokens"] == ["<eos>", "T", "o", "m"] for look in looks)
