"""A local web page and HTTP API for story generation (FastAPI + uvicorn).

    minigpt serve --checkpoint runs/first            # then open http://127.0.0.1:8000

Endpoints: GET / (the page), GET /healthz, GET /api/model (facts about the model),
POST /api/generate (JSON in, JSON out), GET /api/stream (the story as Server-Sent Events, one
event per character), GET /api/next (next-character odds), GET /api/attention.png (attention
heat-maps), and the framework's OpenAPI docs at /docs.

Generation runs in worker threads, never on the event loop, so a long story does not hold up other
requests. At most `max_concurrent` generations run at once; a request waits up to `queue_seconds`
for a free slot and is then answered 503 "busy". A streaming client that goes away stops its
generation at the next character. The next-character and attention views share the same cap.
"""

from __future__ import annotations

import asyncio
import json
import threading
from importlib import resources
from pathlib import Path

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from .checkpoint import checkpoint_dirs, latest_state, load_model
from .config import SampleConfig
from .data import normalise_characters
from .errors import UserError
from .generate import make_generator, stream
from .pretrained import resolve, run_summary

MAX_PROMPT_CHARS = 1000
MAX_NEW_CHARS = 2000


class GenerateRequest(BaseModel):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description="how the story begins")
    max_new_chars: int = Field(500, ge=1, le=MAX_NEW_CHARS)
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="0 = greedy")
    top_k: int | None = Field(None, ge=1, description="keep the k likeliest characters")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="nucleus sampling")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)

    def sample_config(self) -> SampleConfig:
        return SampleConfig(max_new_tokens=None, max_new_chars=self.max_new_chars,
                            temperature=self.temperature,
                            top_k=self.top_k, top_p=self.top_p, seed=self.seed)


class Busy(Exception):
    pass


def create_app(run_dir: str | Path, max_concurrent: int = 2, queue_seconds: float = 10.0) -> FastAPI:
    """Load the model once and build the app around it."""
    run_dir = resolve(run_dir)
    model, tokenizer, config = load_model(run_dir)
    facts = _facts(run_dir, model, config)
    slots = threading.BoundedSemaphore(max_concurrent)
    app = FastAPI(title="MiniGPT stories", version=str(config.get("minigpt_version", "")),
                  description="Generate children's stories with a character-level GPT.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", []) if p not in ("body", "query"))
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)

    @app.exception_handler(UserError)
    async def bad_request(_request, exc: UserError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Busy)
    async def busy(_request, _exc: Busy):
        return JSONResponse({"error": f"busy: {max_concurrent} stories are being written; "
                             "try again in a moment"}, status_code=503)

    def check_prompt(req: GenerateRequest) -> None:
        tokenizer.encode(normalise_characters(req.prompt))  # UserError names unknown characters

    async def take_slot() -> None:
        if not await run_in_threadpool(slots.acquire, True, queue_seconds):
            raise Busy()

    async def capped(function, *args):
        """Run model work in a worker thread, within the cap on concurrent work."""
        await take_slot()
        try:
            return await run_in_threadpool(function, *args)
        finally:
            slots.release()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return (resources.files("minigpt") / "static" / "index.html").read_text(encoding="utf-8")

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_facts():
        return facts

    @app.post("/api/generate")
    async def generate(req: GenerateRequest):
        check_prompt(req)
        pieces = await capped(_write, model, tokenizer, req, None)
        text = "".join(pieces)
        return {"prompt": normalise_characters(req.prompt), "text": text, "chars": len(text),
                "finished": "length" if len(text) >= req.max_new_chars else "end of story"}

    @app.get("/api/next")
    async def next_chars(prompt: str = Query("", max_length=MAX_PROMPT_CHARS),
                         temperature: float = Query(1.0, ge=0.0, le=5.0),
                         top_k: int | None = Query(None, ge=1), top_p: float | None = Query(None, gt=0, le=1),
                         top: int = Query(10, ge=1, le=100)):
        """The likeliest next characters: the model's probability and what sampling draws from."""
        from .introspect import next_char_probabilities

        cfg = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p)
        rows = await capped(next_char_probabilities, model, tokenizer, prompt, cfg, top)
        return {"prompt": normalise_characters(prompt), "rows": rows}

    @app.get("/api/attention.png", response_class=Response)
    async def attention_png(prompt: str = Query("Once upon a time", min_length=1, max_length=MAX_PROMPT_CHARS),
                            layer: int | None = Query(None, ge=0), head: int | None = Query(None, ge=0)):
        """A PNG grid of attention heat-maps for the prompt (needs matplotlib)."""
        png = await capped(_attention_png, model, tokenizer, prompt, layer, head)
        return Response(png, media_type="image/png")

    @app.get("/api/stream")
    async def stream_story(request: Request, prompt: str = "", max_new_chars: int = 500,
                           temperature: float = 0.8, top_k: int | None = None,
                           top_p: float | None = None, seed: int | None = None):
        try:
            req = GenerateRequest(prompt=prompt, max_new_chars=max_new_chars, temperature=temperature,
                                  top_k=top_k, top_p=top_p, seed=seed)
        except ValueError as exc:  # pydantic's ValidationError: same answer as the JSON endpoint
            raise RequestValidationError(exc.errors()) from None
        check_prompt(req)
        await take_slot()
        started = threading.Event()

        async def release_if_never_started():  # the client left before the first byte
            if not started.is_set():
                slots.release()

        return StreamingResponse(_events(request, req, started), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"},
                                 background=BackgroundTask(release_if_never_started))

    async def _events(request: Request, req: GenerateRequest, started: threading.Event):
        started.set()  # from here on, the writer thread owns the slot and releases it
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        loop = asyncio.get_running_loop()

        def send(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the response's event loop is gone: the client left
                cancel.set()

        def produce():
            try:
                _write(model, tokenizer, req, cancel, send)
            finally:
                slots.release()  # first: a free slot matters more than the last message
                send(None)

        threading.Thread(target=produce, daemon=True).start()
        try:
            while True:
                piece = await queue.get()
                if piece is None:
                    yield "event: done\ndata: {}\n\n"
                    return
                yield f"data: {json.dumps({'text': piece})}\n\n"
                if await request.is_disconnected():
                    return
        finally:
            cancel.set()  # the client left (or we are done): stop writing

    return app


def _write(model, tokenizer, req: GenerateRequest, cancel: threading.Event | None, emit=None) -> list[str]:
    """Generate in the calling (worker) thread; stop early when `cancel` is set."""
    cfg = req.sample_config()
    cfg.validate()
    generator = make_generator(cfg.seed)
    pieces = []
    with torch.inference_mode():
        for piece in stream(model, tokenizer, req.prompt, cfg, generator):
            if cancel is not None and cancel.is_set():
                break
            pieces.append(piece)
            if emit:
                emit(piece)
    return pieces


def _attention_png(model, tokenizer, prompt: str, layer, head) -> bytes:
    import tempfile

    from .introspect import attention_maps
    from .viz import plot_attention

    with _model_lock:  # attention_maps switches the model's attention path for a moment
        maps, labels = attention_maps(model, tokenizer, prompt)
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_attention(maps, labels, Path(tmp) / "attention.png", layer, head)
        return path.read_bytes()


_model_lock = threading.Lock()


def _facts(run_dir: Path, model, config: dict) -> dict:
    facts = {"run": run_dir.name, "parameters": model.num_parameters(),
             "vocab_size": model.config.vocab_size, "block_size": model.config.block_size,
             "n_layers": model.config.n_layers, "n_embd": model.config.n_embd,
             "num_heads": model.config.num_heads, "step": None, "held_out_bits_per_char": None,
             "train_bits_per_char": None}
    if checkpoint_dirs(run_dir):
        state = latest_state(run_dir)
        facts["step"] = state.get("step")
    summary = run_summary(run_dir)  # metrics.jsonl of a run, or the summary of an exported model
    facts.update({k: summary[k] for k in ("step", "held_out_bits_per_char", "train_bits_per_char")
                  if summary.get(k) is not None})
    return facts


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_concurrent: int = 2) -> None:
    try:
        import uvicorn
    except ImportError:
        raise UserError("serving needs fastapi and uvicorn: pip install fastapi uvicorn") from None
    app = create_app(run_dir, max_concurrent=max_concurrent)
    print(f"serving {run_dir} on http://{host}:{port} (API docs: http://{host}:{port}/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
