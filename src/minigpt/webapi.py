"""The HTTP contract of `minigpt serve`: what a request may hold, what each answer looks like, and
how the OpenAPI schema (/openapi.json) says so. serve.py builds the routes on it.

The fields are pydantic models with the bounds the schema states, so a client (or schemathesis,
in tests/test_serve_schema.py) can read every limit from /openapi.json. Every answer is 2xx, 4xx
or 503, and every error is JSON {"error": one line}: 422 a field of the wrong type (in a JSON body
true is not 1 and "3" is not 3), out of its bounds or unknown, or a body that is not a JSON
object; 400 a prompt character the model does not know or settings that SampleConfig.validate
refuses; 404/405 no such path or method; 413 a body past 1 MiB; 503 busy (or, should a bug ever
raise, the error named, never a bare 500). The exception handlers and the body-size limit that
make it so live here too, beside the schema that declares them, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

from .errors import UserError

NEEDS_FASTAPI = "serving needs fastapi and uvicorn: pip install fastapi uvicorn"

try:  # an optional part: `minigpt serve` without it is one line, exit 2, as for matplotlib
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
    from starlette.exceptions import HTTPException
except ImportError:
    raise UserError(NEEDS_FASTAPI) from None

from .config import SampleConfig
from .engine import Engine
from .introspect import WINDOW

MAX_PROMPT_CHARS = 1000
MAX_NEW_CHARS = 2000
MAX_TOP = 200  # next tokens listed by /api/inspect (at most the vocabulary)
# JSON's interoperable integers (RFC 8259: a browser's numbers are exact up to here), within the
# CLI's seed bound (SampleConfig.validate), and a schema "maximum" that reads back exactly.
MAX_SEED = 2**53 - 1
# A request body is read no further than this (a 1,000-character prompt is at most ~12 KB of JSON):
# a larger one is a 413, not memory taken.
MAX_BODY_BYTES = 1 << 20
# The server's log (a failure inside is logged here with its traceback).
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


class NextToken(BaseModel):
    token: str
    id: int
    model_p: float = Field(description="the model's probability (temperature 1)")
    sampled_p: float = Field(description="the probability sampling draws with these settings")


class Rest(BaseModel):
    model_p: float = Field(description="the probability of every token not listed in `next`")
    sampled_p: float


class Guess(BaseModel):
    token: str
    p: float


class Depth(BaseModel):
    name: str = Field(description='"embeddings", then "block 0", "block 1", ...')
    norm: list[float] = Field(description="the residual stream's vector length at each token")
    mean_norm: float
    predicts: list[Guess] = Field(description="what the final norm and head would predict next "
                                  "from this depth's stream at the last token (the logit lens)")


class Stage(BaseModel):
    name: str
    shape: list[int]
    dims: str = Field(description="the shape's letters: B batch, T tokens, C n_embd, H heads, "
                      "D head size, F feed-forward width, V vocabulary")


class Shapes(BaseModel):
    B: int
    T: int
    C: int
    H: int
    D: int
    F: int
    V: int
    n_layers: int
    block_size: int
    stages: list[Stage]


Weights = list[list[list[float]] | None]  # one layer: [head][query][key], null: a head not asked for


class Inspection(BaseModel):
    prompt: str = Field(description="the prompt as the model read it")
    held: str = Field(description="trailing spaces a subword or word model holds back, as generation "
                      "does: the next token must start with them (always '' for a character model)")
    tokens: list[str] = Field(description=f"the last <= {WINDOW} tokens read, '<eos>' the start of the story")
    ids: list[int]
    first: int = Field(description="index of tokens[0] among all the tokens read")
    total: int = Field(description="how many tokens the model read (at most block_size)")
    layer: int | None
    head: int | None
    attention: list[Weights | None] = Field(
        description="attention[layer][head][query][key] among `tokens`; rows sum to 1 with "
                    "attention_before; a key after its query is always 0; null: not asked for")
    attention_before: list[list[list[float] | None] | None] | None = Field(
        description="[layer][head][query]: the weight on tokens before `tokens` (null when none)")
    next: list[NextToken] = Field(description="the likeliest next tokens, likeliest first")
    rest: Rest
    sample: NextToken = Field(description="one token drawn from sampled_p, as generation draws it")
    residual: list[Depth] = Field(description="the embeddings, then each block's output")
    shapes: Shapes


class Curve(BaseModel):
    step: int
    train_bpc: float | None = None
    val_bpc: float | None = None
    lr: float | None = None
    chars_per_s: float | None = None
    elapsed_s: float | None = None


class Curves(BaseModel):
    run: str
    records: list[Curve] = Field(description="metrics.jsonl, one record per evaluation, oldest first")


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


class JSONText(Response):
    """An answer already serialised (in the look-inside thread, off the event loop)."""
    media_type = "application/json"


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


def error_answers(*codes: int) -> dict:
    """The error answers of a route, for the OpenAPI schema (503 on every route: busy, or a bug).
    Always JSON, also where the route's own answer is an event stream or a PNG."""
    content = {"application/json": {"schema": ErrorBody.model_json_schema()}}
    return {code: {"description": _ANSWERS[code], "content": content} for code in (*codes, 503)}


class Busy(Exception):
    """No free row and no room to wait: answered 503."""


def answer_errors(app: FastAPI, engine: Engine) -> None:
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


class BodyLimit:
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
