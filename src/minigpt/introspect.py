"""Looking inside a trained model: attention weights, shapes at every stage, next-character odds.

These functions return plain data (tensors, lists, dicts) so the CLI, the web page, the docs and
any notebook can show them however they like; `viz.py` turns them into pictures. `inspect` is
all of them at once for one prompt, from one forward pass: what the page's explainer draws
(GET /api/inspect).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import SampleConfig
from .prompt import held_back_space, prompt_ids, prompt_text
from .evaluate import eval_mode
from .ladder import rotate
from .model import MiniGPT
from .sampling import filter_logits, make_generator, sample_next
from .tokenizer import Tokenizer

WINDOW = 128  # inspect() shows the attention among the prompt's last this many tokens


@dataclass
class Forward:
    """One forward pass over a prompt, everything kept: its ids, the logits (T, V), the attention
    weights (n_layers, H, T, T) and the residual stream after the embeddings and each block
    (n_layers + 1 tensors of (T, C)). The model itself keeps nothing."""

    ids: list[int]
    logits: torch.Tensor
    weights: torch.Tensor
    states: list[torch.Tensor]


@torch.no_grad()
def forward_prompt(model: MiniGPT, tokenizer: Tokenizer, prompt: str) -> Forward:
    """The model's own forward on end-of-story + `prompt` (its last block_size tokens), with
    the attention weights and the residual stream returned on request."""
    ids = prompt_ids(tokenizer, prompt)[-model.config.block_size:]
    states: list[torch.Tensor] = []
    with eval_mode(model):  # need_weights runs the explicit attention, the one that keeps its weights
        logits, _, weights = model(torch.tensor([ids], device=next(model.parameters()).device),
                                   need_weights=True, states=states)
    return Forward(ids, logits[0].float().cpu(), weights[:, 0].float().cpu(),
                   [s[0].float().cpu() for s in states])


def label(tokenizer: Tokenizer, i: int) -> str:
    """A token as text; the end-of-story symbol that starts every story as '<eos>'."""
    return "<eos>" if i == tokenizer.eos_id else tokenizer.piece(i)


def attention_maps(model: MiniGPT, tokenizer: Tokenizer, prompt: str) -> tuple[torch.Tensor, list[str]]:
    """Attention weights for `prompt`: a tensor (n_layers, num_heads, T, T) and the T characters.

    Row i of a map is how much position i draws from each earlier position; rows sum to 1 and the
    part above the diagonal (the future) is 0. The prompt's last block_size characters are used,
    after the end-of-story symbol that starts every story (shown as '<eos>').
    """
    seen = forward_prompt(model, tokenizer, prompt)
    return seen.weights, [label(tokenizer, i) for i in seen.ids]


def distributions(last: torch.Tensor, cfg: SampleConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token's probabilities from the last logits (V,): the model's own (temperature 1)
    and the one sampling really draws from after temperature, top-k and top-p (greedy: the
    likeliest token alone)."""
    raw = F.softmax(last, dim=-1)
    if cfg.greedy or cfg.temperature == 0:
        return raw, F.one_hot(raw.argmax(), raw.numel()).float()
    return raw, F.softmax(filter_logits(last[None], cfg)[0], dim=-1)


@dataclass
class Stage:
    name: str  # module path, e.g. "blocks.0.attn"
    kind: str  # class name
    shape: tuple  # output shape of this stage for the example batch
    params: int  # parameters owned directly by this stage (not its children)


@torch.no_grad()
def summary(model: MiniGPT, batch: int = 1, length: int | None = None) -> list[Stage]:
    """Run one forward pass on a (batch, length) input and record every module's output shape.

    The parameter counts are per module, not counting children, so they add up to the model's total.
    """
    length = length or model.config.block_size
    shapes: dict[str, tuple] = {}
    hooks = []
    for name, module in model.named_modules():
        def record(_module, _inputs, output, name=name):
            first = output[0] if isinstance(output, tuple) else output
            shapes[name] = tuple(first.shape) if torch.is_tensor(first) else ()
        hooks.append(module.register_forward_hook(record))
    try:
        with eval_mode(model):
            model(torch.zeros(batch, length, dtype=torch.long, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    stages = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, (torch.nn.Dropout, torch.nn.ModuleList)):
            continue  # no parameters and no change of shape: only noise in the table
        stages.append(Stage(name or "(model)", type(module).__name__, shapes.get(name, ()), own))
        if name == "blocks.0.attn.qkv":  # what happens between qkv and proj
            stages += attention_trace(model, batch, length)
    return stages


@torch.no_grad()
def attention_trace(model: MiniGPT, batch: int, length: int) -> list[Stage]:
    """The shapes inside the first attention layer, step by step, computed with its own methods."""
    attn = model.blocks[0].attn
    device = next(model.parameters()).device
    x = torch.zeros(batch, length, model.config.n_embd, device=device)
    qkv = attn.qkv(x)
    q, k, v = (attn.split_heads(t) for t in qkv.split(model.config.n_embd, dim=2))
    steps = [("  q, k, v per head (B,H,T,D)", q)]
    if attn.q_norm is not None:
        q, k = attn.q_norm(q), attn.k_norm(k)
        steps.append(("  q, k RMS-normalised (qk_norm)", q))
    if model.rotary is not None:
        rope = model.rotary(torch.arange(length, device=device))
        q, k = rotate(q, *rope), rotate(k, *rope)
        steps.append(("  q, k turned by position (RoPE)", q))
    scores = q @ k.transpose(-2, -1)
    mixed = F.softmax(scores, dim=-1) @ v
    merged = attn.merge_heads(mixed)
    steps += [("  scores q @ k^T (B,H,T,T)", scores), ("  softmax(scores) @ v (B,H,T,D)", mixed),
              ("  heads merged (B,T,C)", merged)]
    del k, v
    return [Stage(label, "", tuple(t.shape), 0) for label, t in steps]


def format_summary(stages: list[Stage], model: MiniGPT) -> str:
    """The summary as a text table, with the letters B, T, C, H, D explained."""
    c = model.config
    width = max(len(s.name) for s in stages) + 2
    lines = [f"{'module':{width}}{'type':22}{'output shape':22}{'params':>10}",
             "-" * (width + 54)]
    for s in stages:
        shape = "x".join(str(d) for d in s.shape) if s.shape else "-"
        lines.append(f"{s.name:{width}}{s.kind:22}{shape:22}{s.params:>10,}")
    total = sum(s.params for s in stages)
    lines += ["-" * (width + 54), f"{'total':{width + 44}}{total:>10,}", "",
              f"B = batch, T = block_size = {c.block_size}, C = n_embd = {c.n_embd}, "
              f"H = num_heads = {c.num_heads}, D = C / H = {c.head_size}, V = vocab = {c.vocab_size}",
              f"attention's qkv makes 3C = {3 * c.n_embd} features: q, k, v of H heads x D dims; "
              f"the feed-forward widens C to ff_hidden_mult x C = {c.ff_hidden_mult * c.n_embd}",
              architecture(c)]
    return "\n".join(lines)


def architecture(c) -> str:
    """One line naming the model's pieces: the seed's, or the ladder's (ladder.py) where chosen."""
    positions = ("learned (position_embedding)" if c.positions == "learned"
                 else "rotary (RoPE: q and k turned by position, no table)")
    pieces = (("QK-norm", c.qk_norm), ("value embeddings (value_embedding, ve_scale per layer)",
                                        c.value_embeddings),
              ("x0 mixing (x0_mix per block)", c.x0_mixing), ("zero-initialised projections", c.zero_init),
              ("head tied to token_embedding", c.tie_head))
    extras = [name for name, on in pieces if on]
    if c.logit_softcap is not None:
        extras.append(f"logits soft-capped at +-{c.logit_softcap:g}")
    return f"activation {c.activation}, norm {c.norm}, positions {positions}" + "".join(
        f", {e}" for e in extras)


def next_char_probabilities(model: MiniGPT, tokenizer: Tokenizer, prompt: str,
                            cfg: SampleConfig | None = None, top: int = 10) -> list[dict]:
    """The `top` likeliest next characters after `prompt`.

    Each row has 'char', 'prob' (the model's own distribution, temperature 1) and 'sampled' (the
    distribution sampling really draws from after temperature, top-k and top-p). Both columns sum
    to 1 over the whole vocabulary.
    """
    cfg = cfg or SampleConfig()
    cfg.validate()
    raw, sampled = distributions(forward_prompt(model, tokenizer, prompt).logits[-1], cfg)
    order = torch.argsort(raw, descending=True)[:top]
    return [{"char": tokenizer.piece(int(i)), "prob": float(raw[i]), "sampled": float(sampled[i])}
            for i in order]


def _rounded(t: torch.Tensor, decimals: int = 5) -> list:
    """A tensor as (nested) lists of floats rounded for JSON: 5 decimals keep a row of 128
    weights summing to 1 within 1e-3, at a third of the text."""
    return torch.round(t.double(), decimals=decimals).tolist()


def inspect(model: MiniGPT, tokenizer: Tokenizer, prompt: str, cfg: SampleConfig | None = None,
            layer: int | None = None, head: int | None = None, top: int = 20,
            seed: int | None = None) -> dict:
    """Everything the explainer shows for `prompt`, from one forward pass (GET /api/inspect).

    - tokens: the last <= WINDOW tokens the model read ('<eos>' first when the story starts in
      the window); `first` is the index of the first of them among all `total` tokens. `held`:
      the trailing spaces a subword or word model holds back (generation does too, prompt.py);
      then only tokens starting with them have a sampled_p, and the text they add is theirs
      without `held`.
    - attention[layer][head][query][key] among those tokens (null for a layer or head not asked
      for); attention_before[layer][head][query] is the weight on tokens before the window, so
      each row and its 'before' sum to 1. Keys after the query (the future) are always 0.
    - next: the `top` likeliest next tokens {token, id, model_p, sampled_p}, model_p the model's
      probability and sampled_p what sampling draws with `cfg`; rest: the probability of all
      others; sample: one token drawn from sampled_p as generation draws it (`seed` repeats it).
    - residual: per depth (the embeddings, then each block) the length of the residual stream's
      vector at each shown token, and what that depth's stream would already predict next if
      the final norm and head read it (the "logit lens").
    - shapes: the letters B, T, C, H, D, F, V of this model and the stages a batch passes through.
    """
    cfg = cfg or SampleConfig()
    cfg.validate()
    c = model.config
    text = prompt_text(prompt)
    # A subword or word model holds a trailing space back, as generation does (prompt.py): it
    # reads the text without it, and only a token starting with it may come next.
    held, allowed = held_back_space(tokenizer, text)
    seen = forward_prompt(model, tokenizer, text[: len(text) - len(held)])
    total = len(seen.ids)
    first = max(0, total - WINDOW)
    layers = range(c.n_layers) if layer is None else [layer]
    heads = range(c.num_heads) if head is None else [head]
    attention = [None] * c.n_layers
    before = [None] * c.n_layers if first else None
    for li in layers:
        attention[li] = [_rounded(seen.weights[li, h, first:, first:]) if h in heads else None
                         for h in range(c.num_heads)]
        if first:
            before[li] = [_rounded(seen.weights[li, h, first:, :first].sum(-1)) if h in heads else None
                          for h in range(c.num_heads)]
    return {"prompt": text, "held": held, "tokens": [label(tokenizer, i) for i in seen.ids[first:]],
            "ids": seen.ids[first:], "first": first, "total": total, "layer": layer, "head": head,
            "attention": attention, "attention_before": before,
            **_next_tokens(tokenizer, seen.logits[-1], cfg, top, seed, allowed),
            "residual": _residual(model, tokenizer, seen.states, first),
            "shapes": _shapes(model, seen)}


def _next_tokens(tokenizer: Tokenizer, last: torch.Tensor, cfg: SampleConfig, top: int, seed,
                 allowed: torch.Tensor | None) -> dict:
    raw = F.softmax(last, dim=-1)
    if allowed is not None:  # the held-back space: sampling draws only tokens that start with it
        last = last.masked_fill(~allowed, float("-inf"))
    sampled = distributions(last, cfg)[1]
    order = torch.argsort(raw, descending=True)[:top].tolist()

    def row(i: int) -> dict:
        return {"token": label(tokenizer, i), "id": i, "model_p": round(float(raw[i]), 6),
                "sampled_p": round(float(sampled[i]), 6)}

    rows = [row(i) for i in order]
    choice = int(sample_next(last[None], cfg, make_generator(seed))[0])
    rest = {"model_p": max(0.0, round(1 - float(raw[order].sum()), 6)),
            "sampled_p": max(0.0, round(1 - float(sampled[order].sum()), 6))}
    return {"next": rows, "rest": rest, "sample": row(choice)}


@torch.no_grad()
def _residual(model: MiniGPT, tokenizer: Tokenizer, states: list[torch.Tensor], first: int) -> list[dict]:
    depths = []
    with eval_mode(model):
        for depth, x in enumerate(states):
            guess = F.softmax(model.readout(x[-1].to(next(model.parameters()).device)).float(), -1)
            p, ids = guess.topk(min(3, guess.numel()))
            depths.append({"name": "embeddings" if depth == 0 else f"block {depth - 1}",
                           "norm": _rounded(x[first:].norm(dim=-1), 2),
                           "mean_norm": round(float(x[first:].norm(dim=-1).mean()), 3),
                           "predicts": [{"token": label(tokenizer, int(i)), "p": round(float(q), 4)}
                                        for q, i in zip(p.cpu(), ids.cpu())]})
    return depths


def _shapes(model: MiniGPT, seen: Forward) -> dict:
    """This model's letters and the shape at each stage, for a batch of one prompt (B = 1); the
    embeddings', the attention weights' and the logits' shapes are those of the real tensors."""
    c = model.config
    B, T = 1, len(seen.ids)
    H, D, C, F_, V = c.num_heads, c.head_size, c.n_embd, c.ff_hidden_mult * c.n_embd, c.vocab_size
    embed = ("token embedding + position embedding" if c.positions == "learned"
             else "token embedding (positions: q and k turned, RoPE)")
    stages = [("token ids", (B, T), "B T"), (embed, (B, *seen.states[0].shape), "B T C"),
              ("q, k, v: C split into H heads of D", (B, H, T, D), "B H T D"),
              ("attention weights: softmax(q k^T / sqrt(D))", (B, *seen.weights.shape[1:]), "B H T T"),
              ("weights @ v, heads merged, projected", (B, T, C), "B T C"),
              ("feed-forward widens, then narrows", (B, T, F_), "B T F"),
              (f"block output, x {c.n_layers} blocks", (B, *seen.states[-1].shape), "B T C"),
              ("logits: final norm, head", (B, *seen.logits.shape), "B T V"),
              ("next-token probabilities (the last row)", (V,), "V")]
    return {"B": B, "T": T, "C": C, "H": H, "D": D, "F": F_, "V": V, "n_layers": c.n_layers,
            "block_size": c.block_size,
            "stages": [{"name": n, "shape": list(shape), "dims": dims} for n, shape, dims in stages]}
