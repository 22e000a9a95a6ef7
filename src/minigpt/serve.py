"""A local web page and HTTP API for story generation (FastAPI + uvicorn).

    minigpt serve --checkpoint runs/first            # then open http://127.0.0.1:8000

Endpoints: GET / (the page, and /static/ its script and style), GET /healthz, GET /api/model
(facts about the model), GET /api/metrics (its learning curves), POST /api/generate (JSON in,
JSON out), GET /api/stream (the story as Server-Sent Events, one event per character), GET
/api/inspect (everything the page's Look inside draws, from one forward pass), GET /api/next
(next-character odds), GET /api/attention.png (attention heat-maps), and the OpenAPI docs at /docs.

One engine owns the model and writes every story (engine.py); `minigpt serve` runs it in the main
thread and the web server in a thread of its own. Each request becomes a stream in its batch,
and every step of the engine advances all of them with one forward pass, so 16 readers cost far
less than 16 times one. At most `max_batch` stories are written at once; a request waits up to
`queue_seconds` for a row (and at most `max_waiting` requests wait), and is otherwise answered 503
"busy". A streaming client gets each character as the step that made it
ends; a client that goes away ends its stream at the next step. The look-inside views (/api/inspect,
/api/next, /api/attention.png) run one at a time in a thread of their own, on the same read-only weights:
they share no state with the engine, so they neither wait for the stories nor race with them.

This module is the app: the routes and the `minigpt serve` command. What a request may hold and
what every answer (and every error) looks like is webapi.py, the HTTP contract; how events and
work cross between the engine's thread, the look-inside thread and the event loop is handoff.py.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import signal
import threading
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import torch

from .errors import UserError
from .webapi import NEEDS_FASTAPI

try:  # an optional part: `minigpt serve` without it is one line, exit 2, as for matplotlib
    from fastapi import FastAPI, Query, Request
    from fastapi.responses import HTMLResponse, Response
    from starlette.exceptions import HTTPException
except ImportError:
    raise UserError(NEEDS_FASTAPI) from None

from .checkpoint import checkpoint_dirs, latest_state
from .config import SampleConfig
from .engine import Engine, Full, Stream
from .handoff import Looks, Mailbox
from .pretrained import load, resolve, run_summary
from .prompt import prompt_text
from .runlog import curves
from .webapi import (MAX_PROMPT_CHARS, MAX_TOP, PNG, SSE_EVENT, BodyLimit, Busy, Curves, EventStream,
                     GenerateRequest, Health, Inspection, JSONText, ModelFacts, NextChars, Prompt, Seed,
                     Story, StoryParams, Temperature, TopK, TopP, answer_errors, error_answers)

# The page's own files (static/), by name: nothing else is served from there.
STATIC = {"explainer.js": "text/javascript", "explainer.css": "text/css"}


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
    looks = Looks()

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
    answer_errors(app, engine)
    app.add_middleware(BodyLimit)
    _add_model_routes(app, engine, directory, _facts(directory, model, config))
    _add_story_routes(app, engine, queue_seconds)
    _add_look_routes(app, model, tokenizer, looks)
    return app


def _add_model_routes(app: FastAPI, engine: Engine, directory: Path, facts: dict) -> None:
    """The page and its scripts, the health check, the facts about the model and its curves."""
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("minigpt") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz", response_model=Health, responses=error_answers())
    async def healthz():
        return {"status": "ok", "streams": len(engine.live), "waiting": len(engine.waiting)}

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in STATIC:
            raise HTTPException(404, "no such file")
        text = (resources.files("minigpt") / "static" / name).read_text(encoding="utf-8")
        return Response(text, media_type=STATIC[name])

    @app.get("/api/model", response_model=ModelFacts, responses=error_answers())
    async def model_facts():
        return dict(facts, max_batch=engine.max_batch, threads=torch.get_num_threads())

    @app.get("/api/metrics", response_model=Curves, responses=error_answers())
    async def metrics():
        """The run's learning curves: its metrics.jsonl as JSON, read again on every request (a
        run still training shows its newest evaluations)."""
        return {"run": directory.name, "records": await asyncio.to_thread(curves, directory)}


async def _start_story(engine: Engine, req: StoryParams, pieces: bool,
                       queue_seconds: float) -> tuple[Stream, asyncio.Queue]:
    """A new stream in the engine and the queue its events arrive on, once it has a row:
    ("admitted", None), then ("piece", text) for each piece if asked for, ("done", reason)."""
    s = engine.stream(req.prompt, req.sample_config())  # UserError: bad prompt or settings
    mailbox = Mailbox.of(asyncio.get_running_loop())
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
    @app.post("/api/generate", response_model=Story, responses=error_answers(400, 413, 422))
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
        **error_answers(400, 422)})
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


def _add_look_routes(app: FastAPI, model, tokenizer, looks: Looks) -> None:
    """GET /api/inspect (the explainer's one answer), /api/next (next-character odds) and
    /api/attention.png (attention heat-maps)."""
    c = model.config

    def layer_query():
        return Query(None, ge=0, le=c.n_layers - 1, description="one layer (default: all)")

    def head_query():
        return Query(None, ge=0, le=c.num_heads - 1, description="one head (default: all)")

    @app.get("/api/inspect", response_model=Inspection,
             responses=error_answers(400, 422))
    async def inspect(prompt: Annotated[Prompt, Query()] = "",
                      temperature: Annotated[Temperature, Query()] = 1.0,
                      top_k: Annotated[TopK | None, Query()] = None,
                      top_p: Annotated[TopP | None, Query()] = None,
                      layer: int | None = layer_query(), head: int | None = head_query(),
                      top: Annotated[int, Query(ge=1, le=MAX_TOP, description="how many next tokens")] = 20,
                      seed: Annotated[Seed | None, Query()] = None):
        """The model looked inside for the text in the box, from one forward pass: its tokens,
        the attention weights among the last 128 of them, the next-token distribution before and
        after sampling (and one token drawn from it), the residual stream at every depth, and the
        shapes of every stage."""
        cfg = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        return JSONText(await looks.run(_inspect_json, model, tokenizer, prompt, cfg, layer, head,
                                        min(top, c.vocab_size), seed))

    @app.get("/api/next", response_model=NextChars, responses=error_answers(400, 422))
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
        **error_answers(400, 422)})
    async def attention_png(
            prompt: Annotated[str, Query(min_length=1, max_length=MAX_PROMPT_CHARS)] = "Once upon a time",
            layer: int | None = layer_query(), head: int | None = head_query()):
        """A PNG grid of attention heat-maps for the prompt (needs matplotlib)."""
        png = await looks.run(_attention_png, model, tokenizer, prompt, layer, head)
        return PNG(png)


def _inspect_json(model, tokenizer, prompt: str, cfg: SampleConfig, layer, head, top, seed) -> str:
    from .introspect import inspect

    return json.dumps(inspect(model, tokenizer, prompt, cfg, layer, head, top, seed),
                      separators=(",", ":"))


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
        raise UserError(NEEDS_FASTAPI) from None
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
