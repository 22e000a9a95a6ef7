"""A local web page and HTTP API for story generation (FastAPI + uvicorn).

    minigpt serve --checkpoint runs/first            # then open http://127.0.0.1:8000

Endpoints: GET / (the page), GET /healthz, GET /api/model (facts about the model),
POST /api/generate (JSON in, JSON out), GET /api/stream (the story as Server-Sent Events, one
event per character), GET /api/next (next-character odds), GET /api/attention.png (attention
heat-maps), and the framework's OpenAPI docs at /docs.

One engine owns the model and writes every story (engine.py); `minigpt serve` runs it in the main
thread and the web server in a thread of its own. Each request becomes a stream in its batch,
and every step of the engine advances all of them with one forward pass, so 16 readers cost far
less than 16 times one. At most `max_batch` stories are written at once; a request waits up to
`queue_seconds` for a row (and at most `max_waiting` requests wait), and is otherwise answered 503
"busy". A streaming client gets each character as the step that made it
ends; a client that goes away ends its stream at the next step. The look-inside views (/api/next,
/api/attention.png) run one at a time in a thread of their own, on the same read-only weights:
they share no state with the engine, so they neither wait for the stories nor race with them.

Every answer is 2xx, 4xx or 503, and every error is JSON {"error": one line}: 422 a field of the
wrong type (in a JSON body true is not 1 and "3" is not 3), out of its bounds or unknown, or a body
that is not a JSON object; 400 a prompt character the model does not know or settings that
SampleConfig.validate refuses; 404/405 no such path or method; 413 a body past 1 MiB; 503 busy
(or, should a bug ever raise, the error named, never a bare 500). The OpenAPI schema
(/openapi.json) declares each of them, with the bounds of every field; tests/test_serve_schema.py
fuzzes the app against it.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import signal
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import torch

from .errors import UserError

try:  # an optional part: `minigpt serve` without it is one line, exit 2, as for matplotlib
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
    from starlette.exceptions import HTTPException
except ImportError:
    raise UserError("serving needs fastapi and uvicorn: pip install fastapi uvicorn") from None

from .checkpoint import checkpoint_dirs, latest_state
from .config import SampleConfig
from .engine import Engine, Full, Stream
from .pretrained import load, resolve, run_summary
from .prompt import prompt_text

MAX_PROMPT_CHARS = 1000
MAX_NEW_CHARS = 2000
# JSON's interoperable integers (RFC 8259: a browser's numbers are exact up to here), within the
# CLI's seed bound (SampleConfig.validate), and a schema "maximum" that reads back exactly.
MAX_SEED = 2**53 - 1
MAX_LOOKS_WAITING = 8  # look-inside requests queued for their thread before the next is "busy"
# A request body is read no further than this (a 1,000-character prompt is at most ~12 KB of JSON):
# a larger one is a 413, not memory taken.
MAX_BODY_BYTES = 1 << 20
log = logging.getLogger("minigpt.serve")

# The fields, with the bounds the schema states. SampleConfig.validate (the CLI's check) still runs
# on every request, so anything it refuses within these bounds is a 400 naming the field.
Prompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS, description="how the story begins")]
NewChars = Annotated[int, Field(ge=1, le=MAX_NEW_CHARS, description="characters to write")]
Temperature = Annotated[float, Field(ge=0.0, le=5.0, description="0 = greedy")]
TopK = Annotated[int, Field(ge=1, description="keep the k likeliest characters")]
TopP = Annotated[float, Field(gt=0.0, le=1.0, description="nucleus sampling: the smallest set of "
                              "characters whose probability reaches p")]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description="makes the story reproducible")]


class StoryParams(BaseModel):
    """The query of GET /api/stream: strings read as numbers, unknown parameters ignored."""

    prompt: Prompt = ""
    max_new_chars: NewChars = 500
    temperature: Temperature = 0.8
    top_k: TopK | None = None
    top_p: TopP | None = None
    seed: Seed | None = None

    def sample_config(self) -> SampleConfig:
        return SampleConfig(max_new_tokens=None, max_new_chars=self.max_new_chars,
                            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=self.seed)


def _json_number(value):
    """A number in a JSON body is a JSON number: true is not 1 and "3" is not 3 (3.0 is 3, as in
    JSON Schema, and 3.5 is no integer)."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be a JSON number, not {json.dumps(value)}")
    return value


JsonNumber = BeforeValidator(_json_number)


class GenerateRequest(StoryParams):
    """The JSON body of POST /api/generate: numbers are JSON numbers, and an unknown field is an
    error (a typo is not quietly the default)."""

    model_config = ConfigDict(extra="forbid")
    max_new_chars: Annotated[NewChars, JsonNumber] = 500
    temperature: Annotated[Temperature, JsonNumber] = 0.8
    top_k: Annotated[TopK | None, JsonNumber] = None
    top_p: Annotated[TopP | None, JsonNumber] = None
    seed: Annotated[Seed | None, JsonNumber] = None


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong, in one line")


class Story(BaseModel):
    prompt: str = Field(description="the prompt as the model read it")
    text: str = Field(description="what the model wrote after it")
    chars: int
    finished: str = Field(description="length, end of story or cancelled")


class NextRow(BaseModel):
    char: str
    prob: float = Field(description="the model's probability (temperature 1)")
    sampled: float = Field(description="the probability sampling draws with these settings")


class NextChars(BaseModel):
    prompt: str
    rows: list[NextRow]


class Health(BaseModel):
    status: str
    streams: int = Field(description="stories being written")
    waiting: int = Field(description="requests waiting for a row")


class ModelFacts(BaseModel):
    model_config = ConfigDict(extra="allow")
    run: str
    parameters: int
    vocab_size: int
    block_size: int
    n_layers: int
    n_embd: int
    num_heads: int
    step: int | None
    held_out_bits_per_char: float | None
    train_bits_per_char: float | None
    eval_bits_per_char: float | None = None
    max_batch: int
    threads: int


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


class PNG(Response):
    media_type = "image/png"


# One Server-Sent Event of /api/stream, as an event-stream schema describes it.
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {
    "event": {"type": "string", "enum": ["message", "done"]},
    "data": {"type": "string", "description": 'JSON: {"text": the next character(s)}; {} when done'}}}

_ANSWERS = {
    400: "a prompt character the model does not know, or settings SampleConfig.validate refuses",
    413: f"a body of more than {MAX_BODY_BYTES:,} bytes",
    422: "a parameter of the wrong type, out of its bounds or unknown, or a body that is not a "
         "JSON object",
    503: "busy: no free row within the wait, or too many waiting; try again in a moment",
}


def _errors(*codes: int) -> dict:
    """The error answers of a route, for the OpenAPI schema (503 on every route: busy, or a bug).
    Always JSON, also where the route's own answer is an event stream or a PNG."""
    content = {"application/json": {"schema": ErrorBody.model_json_schema()}}
    return {code: {"description": _ANSWERS[code], "content": content} for code in (*codes, 503)}


class Busy(Exception):
    """No free row and no room to wait: answered 503."""


def create_app(spec: str | Path | None, max_batch: int = 16, queue_seconds: float = 10.0,
               max_waiting: int | None = None, engine_thread: bool = True) -> FastAPI:
    """Load the model once (any checkpoint spec `pretrained.load` takes), start the engine thread
    that owns it, and build the app around it. `max_waiting` defaults to 4 x max_batch. With
    engine_thread=False the caller runs `app.state.engine.serve_forever(app.state.stop)` itself."""
    directory = resolve(spec)  # kept for the model's facts (its metrics, its checkpoints)
    model, tokenizer, config = load(directory, "cpu")
    engine = Engine(model, tokenizer, max_batch=max_batch,
                    max_waiting=4 * max_batch if max_waiting is None else max_waiting)
    stop = threading.Event()
    thread: list[threading.Thread] = []

    def start_engine():
        if engine_thread and not (thread and thread[-1].is_alive()):
            stop.clear()
            thread.append(threading.Thread(target=engine.serve_forever, args=(stop,), daemon=True,
                                           name="minigpt-engine"))
            thread[-1].start()
    start_engine()
    looks = _Looks()

    @asynccontextmanager
    async def lifespan(_app):
        # The app outlives a shutdown: a test client (or schemathesis, which ends the lifespan
        # after each test) that starts it again finds the engine and the look-inside thread
        # running again. The old engine thread is joined first, so two never step at once.
        start_engine()
        yield
        stop.set()
        looks.close()
        if engine_thread and thread:
            await asyncio.to_thread(thread[-1].join, 10)

    app = FastAPI(title="MiniGPT stories", version=str(config.get("minigpt_version", "")),
                  description="Generate children's stories with a character-level GPT.", lifespan=lifespan)
    app.state.engine, app.state.stop, app.state.directory = engine, stop, directory
    _answer_errors(app, engine)
    app.add_middleware(_BodyLimit)
    _add_model_routes(app, engine, _facts(directory, model, config))
    _add_story_routes(app, engine, queue_seconds)
    _add_look_routes(app, model, tokenizer, looks)
    return app


def _answer_errors(app: FastAPI, engine: Engine) -> None:
    """Every error is a JSON {"error": one line}: 422 bad field or body, 400 bad prompt or
    settings, 404/405 no such path or method, 503 busy, and 503 naming the error should a bug
    ever raise (logged with its traceback), so that no answer is a 500."""
    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(UserError)
    async def bad_request(_request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Busy)
    async def busy(_request, _exc: Busy):
        return JSONResponse({"error": f"busy: {len(engine.live)} stories are being written and "
                             f"{len(engine.waiting)} wait; try again in a moment"}, status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):  # 404, 405 (its Allow header kept), ...
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"error": f"{detail}: {request.method} {request.url.path}"},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def failed(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        message = " ".join(str(exc).split())[:300]
        return JSONResponse({"error": f"the server failed ({type(exc).__name__}: {message}); "
                             "please report it"}, status_code=503)


class _BodyLimit:
    """ASGI middleware: a request body is read up to MAX_BODY_BYTES, and one that goes on is
    answered 413 (an HTTPException raised where the route reads the body, so it gets the
    documented shape)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")
            return message

        await self.app(scope, limited, send)


def _validation_message(errors) -> str:
    """The first of pydantic's errors as one line naming the field."""
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    where = ".".join(loc[1:] if loc and loc[0] in ("body", "query") else loc)
    kind = first.get("type", "")
    if kind == "json_invalid":
        return f"the body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    if loc[:1] == ["body"] and not where:
        return "the body must be a JSON object (Content-Type: application/json), e.g. " \
               '{"prompt": "Once upon a time", "max_new_chars": 200}'
    if kind == "extra_forbidden":
        return f"{where}: unknown field; the fields are {', '.join(GenerateRequest.model_fields)}"
    return f"{where}: {str(first.get('msg')).removeprefix('Value error, ')}"


def _add_model_routes(app: FastAPI, engine: Engine, facts: dict) -> None:
    """The page, the health check and the facts about the model."""
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("minigpt") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz", response_model=Health, responses=_errors())
    async def healthz():
        return {"status": "ok", "streams": len(engine.live), "waiting": len(engine.waiting)}

    @app.get("/api/model", response_model=ModelFacts, responses=_errors())
    async def model_facts():
        return dict(facts, max_batch=engine.max_batch, threads=torch.get_num_threads())


async def _start_story(engine: Engine, req: StoryParams, pieces: bool,
                       queue_seconds: float) -> tuple[Stream, asyncio.Queue]:
    """A new stream in the engine and the queue its events arrive on, once it has a row:
    ("admitted", None), then ("piece", text) for each piece if asked for, ("done", reason)."""
    s = engine.stream(req.prompt, req.sample_config())  # UserError: bad prompt or settings
    mailbox = _Mailbox.of(asyncio.get_running_loop())
    events: asyncio.Queue = asyncio.Queue()

    def notify(kind, value):  # called in the engine's thread
        if (pieces or kind != "piece") and not mailbox.post(events, (kind, value)):
            engine.cancel(s)  # the request's event loop is gone

    s.notify = notify
    try:
        engine.add(s)
    except Full:
        raise Busy() from None
    try:
        kind, _ = await asyncio.wait_for(events.get(), queue_seconds)  # ("admitted", None)
    except asyncio.TimeoutError:
        kind = "timeout"
    if kind != "admitted":
        engine.cancel(s)
        raise Busy()
    return s, events


def _add_story_routes(app: FastAPI, engine: Engine, queue_seconds: float) -> None:
    """POST /api/generate (the whole story as JSON) and GET /api/stream (Server-Sent Events)."""
    @app.post("/api/generate", response_model=Story, responses=_errors(400, 413, 422))
    async def generate(req: GenerateRequest):
        s, events = await _start_story(engine, req, False, queue_seconds)
        try:
            while (await events.get())[0] != "done":
                pass
        finally:
            engine.cancel(s)  # a no-op once finished; frees the row if this request was dropped
        if s.finished == "error":  # the engine's step failed (it said why on stderr): a 503
            raise RuntimeError("the story could not be written")
        return {"prompt": s.prompt, "text": s.text, "chars": len(s.text), "finished": s.finished}

    @app.get("/api/stream", response_class=EventStream, responses={
        200: {"description": 'Server-Sent Events: `data: {"text": c}` for each character, then '
                             "`event: done` (`data: {}`)", "content": {"text/event-stream": {"schema": SSE_EVENT}}},
        **_errors(400, 422)})
    async def stream_story(request: Request, req: Annotated[StoryParams, Query()]):
        s, events = await _start_story(engine, req, True, queue_seconds)

        async def sse():
            try:
                while True:
                    kind, value = await events.get()
                    if kind == "done":
                        yield "event: done\ndata: {}\n\n"
                        return
                    yield f"data: {json.dumps({'text': value})}\n\n"
                    if await request.is_disconnected():
                        return
            finally:
                engine.cancel(s)  # the client left (or we are done): free the row

        return EventStream(sse(), headers={"Cache-Control": "no-cache"})


class _Looks:
    """The look-inside views' own thread: one view at a time, at most MAX_LOOKS_WAITING queued."""

    def __init__(self):
        self.pool: ThreadPoolExecutor | None = None  # made on first use, again after close()
        self.waiting = 0

    async def run(self, function, *args):
        if self.waiting >= MAX_LOOKS_WAITING:
            raise Busy()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minigpt-look")
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False)


def _add_look_routes(app: FastAPI, model, tokenizer, looks: _Looks) -> None:
    """GET /api/next (next-character odds) and GET /api/attention.png (attention heat-maps)."""
    c = model.config

    @app.get("/api/next", response_model=NextChars, responses=_errors(400, 422))
    async def next_chars(prompt: Annotated[Prompt, Query()] = "",
                         temperature: Annotated[Temperature, Query()] = 1.0,
                         top_k: Annotated[TopK | None, Query()] = None,
                         top_p: Annotated[TopP | None, Query()] = None,
                         top: Annotated[int, Query(ge=1, le=100, description="how many rows")] = 10):
        """The likeliest next characters: the model's probability and what sampling draws from."""
        from .introspect import next_char_probabilities

        cfg = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        rows = await looks.run(next_char_probabilities, model, tokenizer, prompt, cfg, top)
        return {"prompt": prompt_text(prompt), "rows": rows}

    @app.get("/api/attention.png", response_class=PNG, responses={
        200: {"description": "a grid of heat-maps, one per layer and head",
              "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **_errors(400, 422)})
    async def attention_png(
            prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)] = "Once upon a time",
            layer: int | None = Query(None, ge=0, le=c.n_layers - 1, description="one layer (default: all)"),
            head: int | None = Query(None, ge=0, le=c.num_heads - 1, description="one head (default: all)")):
        """A PNG grid of attention heat-maps for the prompt (needs matplotlib)."""
        png = await looks.run(_attention_png, model, tokenizer, prompt, layer, head)
        return PNG(png)


class _Mailbox:
    """Carries the engine thread's events to an event loop: one wake-up of the loop for all the
    events of a step (16 streams' pieces), not one per event."""

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _create = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.items: list[tuple[asyncio.Queue, tuple]] = []
        self.lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Mailbox:
        with cls._create:
            if loop not in cls._by_loop:
                cls._by_loop[loop] = cls(loop)
            return cls._by_loop[loop]

    def post(self, queue: asyncio.Queue, item: tuple) -> bool:
        """Queue an item for delivery; False when the loop is closed."""
        with self.lock:
            first = not self.items
            self.items.append((queue, item))
        if first:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:
                return False
        return True

    def _deliver(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        for queue, item in items:
            queue.put_nowait(item)


def _attention_png(model, tokenizer, prompt: str, layer, head) -> bytes:
    import tempfile
    from .introspect import attention_maps
    from .viz import plot_attention

    maps, labels = attention_maps(model, tokenizer, prompt)
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_attention(maps, labels, Path(tmp) / "attention.png", layer, head)
        return path.read_bytes()


def _facts(run_dir: Path, model, config: dict) -> dict:
    c = model.config
    facts = {"run": run_dir.name, "parameters": model.num_parameters(), "vocab_size": c.vocab_size,
             "block_size": c.block_size, "n_layers": c.n_layers, "n_embd": c.n_embd, "num_heads": c.num_heads,
             "step": None, "held_out_bits_per_char": None, "train_bits_per_char": None}
    if checkpoint_dirs(run_dir):
        facts["step"] = latest_state(run_dir).get("step")
    summary = run_summary(run_dir)  # metrics.jsonl of a run, or an exported model's summary:
    # held_out_bits_per_char is training's estimate, eval_bits_per_char `minigpt eval`'s score
    facts.update({k: summary[k] for k in ("step", "held_out_bits_per_char", "train_bits_per_char",
                                          "eval_bits_per_char") if summary.get(k) is not None})
    # JSON has no NaN or infinity: a diverged run's score is unknown (null), not a failed answer
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in facts.items()}


def serve(spec: str | Path | None, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 16,
          threads: int | None = None, max_waiting: int | None = None) -> None:
    try:
        import uvicorn
    except ImportError:
        raise UserError("serving needs fastapi and uvicorn: pip install fastapi uvicorn") from None
    from .device import set_threads

    _check_address(host, port)
    # The engine decides how the cores are used: one thread steps every story, with this many
    # torch threads in each batched forward, however many requests there are.
    threads = set_threads(threads)
    app = create_app(spec, max_batch=max_batch, max_waiting=max_waiting, engine_thread=False)
    # The web server gets a thread of its own and the engine keeps the main thread: torch's
    # worker threads run at full speed only for the thread that first used them (measured:
    # a batched forward from another thread took 5x longer).
    signal.signal(signal.SIGTERM, lambda *_: app.state.stop.set())  # stop as for Ctrl-C
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    web = threading.Thread(target=server.run, name="minigpt-web", daemon=True)
    web.start()
    while web.is_alive() and not server.started:
        time.sleep(0.05)
    if not server.started:
        raise UserError(f"cannot listen on {host}:{port}: choose another --port (or --host)")
    threading.Thread(target=lambda: (web.join(), app.state.stop.set()), daemon=True).start()
    url = f"http://{host}:{port}"
    print(f"serving {app.state.directory} on {url} (API docs: {url}/docs) | up to {max_batch} "
          f"stories at once | {threads} torch thread(s)", flush=True)
    try:
        app.state.engine.serve_forever(app.state.stop)
    except KeyboardInterrupt:
        pass
    print("stopping", flush=True)
    server.should_exit = True
    web.join(timeout=10)


def _check_address(host: str, port: int) -> None:
    """A one-line error before the model loads when the address cannot be listened on."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise UserError(f"cannot listen on {host}:{port} ({reason}): choose another --port "
                        "(or --host)") from None
