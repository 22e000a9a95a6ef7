"""Looking inside a trained model: attention weights, shapes at every stage, next-character odds.

These functions return plain data (tensors, lists, dicts) so the CLI, the docs and any notebook can
show them however they like; `viz.py` turns them into pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import SampleConfig
from .prompt import prompt_ids
from .evaluate import eval_mode
from .ladder import rotate
from .model import MiniGPT
from .sampling import filter_logits
from .tokenizer import Tokenizer


@torch.no_grad()
def attention_maps(model: MiniGPT, tokenizer: Tokenizer, prompt: str) -> tuple[torch.Tensor, list[str]]:
    """Attention weights for `prompt`: a tensor (n_layers, num_heads, T, T) and the T characters.

    Row i of a map is how much position i draws from each earlier position; rows sum to 1 and the
    part above the diagonal (the future) is 0. The prompt's last block_size characters are used,
    after the end-of-story symbol that starts every story (shown as '<eos>').
    """
    ids = prompt_ids(tokenizer, prompt)[-model.config.block_size:]
    with eval_mode(model):  # need_weights runs the explicit attention, the one that keeps its weights
        _, _, weights = model(torch.tensor([ids], device=next(model.parameters()).device), need_weights=True)
    maps = weights[:, 0].float().cpu()
    labels = ["<eos>" if i == tokenizer.eos_id else tokenizer.piece(i) for i in ids]
    return maps, labels


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


@torch.no_grad()
def next_char_probabilities(model: MiniGPT, tokenizer: Tokenizer, prompt: str,
                            cfg: SampleConfig | None = None, top: int = 10) -> list[dict]:
    """The `top` likeliest next characters after `prompt`.

    Each row has 'char', 'prob' (the model's own distribution, temperature 1) and 'sampled' (the
    distribution sampling really draws from after temperature, top-k and top-p). Both columns sum
    to 1 over the whole vocabulary.
    """
    cfg = cfg or SampleConfig()
    cfg.validate()
    ids = prompt_ids(tokenizer, prompt)[-model.config.block_size:]
    with eval_mode(model):
        logits, _, _ = model(torch.tensor([ids], device=next(model.parameters()).device))
    last = logits[0, -1].float().cpu()
    raw = F.softmax(last, dim=-1)
    filtered = None if cfg.greedy or cfg.temperature == 0 else filter_logits(last[None], cfg)[0]
    if filtered is None:  # greedy: the likeliest character alone
        sampled = F.one_hot(raw.argmax(), raw.numel()).float()
    else:
        sampled = F.softmax(filtered, dim=-1)
    order = torch.argsort(raw, descending=True)[:top]
    return [{"char": tokenizer.piece(int(i)), "prob": float(raw[i]), "sampled": float(sampled[i])}
            for i in order]
