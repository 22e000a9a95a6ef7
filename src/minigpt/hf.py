"""Our models and tokenizers in HuggingFace `transformers` format (`minigpt export --format transformers`).

    minigpt export --checkpoint runs/first --format transformers --out my-model
    from transformers import pipeline
    pipeline("text-generation", model="my-model")("Once upon a time", max_new_tokens=200)

Two ways a model leaves here, and the tokenizer in one:

- The seed's architecture (learned positions, LayerNorm, ReLU or GELU, no ladder extras) *is* a
  GPT-2: `to_gpt2` writes a plain `GPT2LMHeadModel` (attention's qkv is GPT-2's c_attn, with the
  same q | k | v and head order; GPT-2's Conv1D keeps its weights as (in, out), the transpose of
  ours). Any program that reads GPT-2 reads it, with no code of ours.
- Everything else the ladder adds (rotary positions, RMSNorm, ReLU², QK-norm, value embeddings,
  x0 mixing, a soft cap) has no standard class: `MiniGPTConfig` and `MiniGPTForCausalLM` wrap
  our own `MiniGPT`, and importing this module registers them with transformers' Auto classes
  (model_type "minigpt"). So `import minigpt.hf` and then `AutoModelForCausalLM.from_pretrained`
  loads such an export; no code is written into the export and trust_remote_code is never used.
- `to_hf_tokenizer` rebuilds our tokenizer as a `PreTrainedTokenizerFast` (tokenizer.json):
  the same ids, end-of-story `<|endoftext|>` as id 0, put in front of every text as ours does
  (prompt.py), and decoding that joins the pieces back exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import ModelConfig
from .errors import UserError
from .model import MiniGPT
from .tokenizer import EOS_TEXT, UNK_TEXT, _WORD_RE, Tokenizer

NEEDS_TRANSFORMERS = "exporting to transformers needs it: pip install transformers"

try:
    import transformers
    from transformers import (AutoConfig, AutoModelForCausalLM, GenerationMixin, GPT2Config,
                              GPT2LMHeadModel, PretrainedConfig, PreTrainedModel,
                              PreTrainedTokenizerFast)
    from transformers.modeling_outputs import CausalLMOutput
except ImportError:
    raise UserError(NEEDS_TRANSFORMERS) from None


def gpt2_compatible(c: ModelConfig) -> bool:
    """Can a plain GPT-2 hold this model? (learned positions, LayerNorm, ReLU or GELU, nothing else)"""
    return (c.positions == "learned" and c.norm == "layernorm" and c.activation in ("relu", "gelu")
            and not (c.qk_norm or c.value_embeddings or c.x0_mixing) and c.logit_softcap is None)


def to_gpt2(model: MiniGPT, eos_id: int) -> GPT2LMHeadModel:
    """The same network as a transformers GPT2LMHeadModel, weight for weight (fp32)."""
    c = model.config
    config = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                        n_layer=c.n_layers, n_head=c.num_heads, n_inner=c.ff_hidden_mult * c.n_embd,
                        activation_function=c.activation, resid_pdrop=c.dropout, embd_pdrop=c.dropout,
                        attn_pdrop=c.dropout if c.attn_dropout is None else c.attn_dropout,
                        layer_norm_epsilon=1e-5,
                        tie_word_embeddings=c.tie_head, bos_token_id=eos_id, eos_token_id=eos_id)
    gpt2 = GPT2LMHeadModel(config).eval()
    ours = {k: v.detach().float() for k, v in model.state_dict().items()}

    def bias(name: str, size: int) -> torch.Tensor:  # bias=False: GPT-2 always has one, at zero
        return ours.get(name, torch.zeros(size))

    weights = {"transformer.wte.weight": ours["token_embedding.weight"],
               "transformer.wpe.weight": ours["position_embedding.weight"],
               "transformer.ln_f.weight": ours["ln_f.weight"],
               "transformer.ln_f.bias": bias("ln_f.bias", c.n_embd),
               "lm_head.weight": ours["token_embedding.weight" if c.tie_head else "head.weight"]}
    for i in range(c.n_layers):
        a, g = f"blocks.{i}.", f"transformer.h.{i}."
        for ours_name, theirs, size in (("ln1", "ln_1", c.n_embd), ("ln2", "ln_2", c.n_embd)):
            weights[g + theirs + ".weight"] = ours[a + ours_name + ".weight"]
            weights[g + theirs + ".bias"] = bias(a + ours_name + ".bias", size)
        for ours_name, theirs, size in (("attn.qkv", "attn.c_attn", 3 * c.n_embd),
                                        ("attn.proj", "attn.c_proj", c.n_embd),
                                        ("mlp.up", "mlp.c_fc", c.ff_hidden_mult * c.n_embd),
                                        ("mlp.down", "mlp.c_proj", c.n_embd)):
            weights[g + theirs + ".weight"] = ours[a + ours_name + ".weight"].t().contiguous()
            weights[g + theirs + ".bias"] = bias(a + ours_name + ".bias", size)
    missing, unexpected = gpt2.load_state_dict(weights, strict=False)
    left = [k for k in missing if not k.endswith(".attn.bias") and k != "lm_head.weight"]
    if left or unexpected:  # a mapping bug, never a user's mistake
        raise RuntimeError(f"GPT-2 weights left unset: {left}, unused: {list(unexpected)}")
    return gpt2


def window_start(length: int, block: int) -> int:
    """Where the window the model reads begins, for a context of `length` tokens that started
    within one window: the engine's rule (engine.py) without its state. Positions stop at
    block_size; past it the context restarts from its last 3/4 of a block and grows again."""
    if length <= block:
        return 0
    keep = max(1, (3 * block) // 4)
    return length - keep - (length - block - 1) % (block + 1 - keep)


class MiniGPTConfig(PretrainedConfig):
    """transformers' config for our own architecture: `minigpt` holds ModelConfig's fields."""

    model_type = "minigpt"

    def __init__(self, minigpt: dict | None = None, **kwargs):
        self.minigpt = dict(minigpt or {})
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)
        # the names transformers' generation code reads from every decoder's config
        self.num_hidden_layers = self.minigpt.get("n_layers", 0)
        self.hidden_size = self.minigpt.get("n_embd", 0)
        self.num_attention_heads = self.minigpt.get("num_heads", 0)


class MiniGPTForCausalLM(PreTrainedModel, GenerationMixin):
    """Our MiniGPT inside transformers: `generate`, `pipeline` and `from_pretrained` work on it.

    Each call reads the whole context again (no key/value cache: `use_cache` is off). Past
    block_size tokens it reads the window our engine would (`window_start`), so generate()
    continues a prompt of up to block_size tokens exactly as we do. Padding is not supported:
    give one text, or texts of one length."""

    config_class = MiniGPTConfig
    base_model_prefix = "model"
    _no_split_modules = ["Block"]

    def __init__(self, config: MiniGPTConfig):
        super().__init__(config)
        self.model = MiniGPT(ModelConfig(**config.minigpt))
        self.post_init()

    def _init_weights(self, module):  # MiniGPT initialises itself; loading overwrites it anyway
        pass

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """transformers builds the model on the "meta" device and loads only the saved tensors; our
        fixed tables (the causal mask, the rotary angles) are not saved, so the loaded weights go
        into a MiniGPT built for real, which computes them."""
        loaded = super().from_pretrained(*args, **kwargs)
        dtype = next(loaded.model.parameters()).dtype  # as saved, or as torch_dtype= asked
        fresh = MiniGPT(ModelConfig(**loaded.config.minigpt)).to(dtype)
        fresh.load_state_dict(loaded.model.state_dict())
        loaded.model = fresh.to(loaded.device)
        return loaded.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **_ignored) -> CausalLMOutput:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("MiniGPTForCausalLM does not take padding: give one text at a time, "
                             "or texts of the same length")
        ids = input_ids[:, window_start(input_ids.size(1), self.model.config.block_size):]
        logits, _, _ = self.model(ids)
        loss = None
        if labels is not None:
            labels = labels[:, -ids.size(1):]
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **_ignored):
        return {"input_ids": input_ids, "attention_mask": attention_mask}


AutoConfig.register("minigpt", MiniGPTConfig, exist_ok=True)
AutoModelForCausalLM.register(MiniGPTConfig, MiniGPTForCausalLM, exist_ok=True)


def to_transformers(model: MiniGPT, eos_id: int):
    """A transformers model of ours: a GPT2LMHeadModel where the architecture allows, else ours."""
    if gpt2_compatible(model.config):
        return to_gpt2(model, eos_id)
    c = model.config
    wrapped = MiniGPTForCausalLM(MiniGPTConfig(minigpt=dict(vars(c)), vocab_size=c.vocab_size,
                                               bos_token_id=eos_id, eos_token_id=eos_id))
    wrapped.model.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    return wrapped.eval()


def to_hf_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Our tokenizer as a PreTrainedTokenizerFast with the same ids; tokenizer(text) puts the
    end-of-story token first (as prompt_ids does), decode(ids) joins the pieces back."""
    import tokenizers as tk

    if tokenizer.kind == "bpe":  # ours is HF's byte-level BPE with every id shifted by one
        data = json.loads(tokenizer.hf.to_str())
        data["model"]["vocab"] = {EOS_TEXT: 0, **{p: i + 1 for p, i in data["model"]["vocab"].items()}}
        hf = tk.Tokenizer.from_str(json.dumps(data))
    elif tokenizer.kind == "char":  # one piece per character
        vocab = {EOS_TEXT: 0, **tokenizer.stoi}
        hf = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token=UNK_TEXT))
        hf.pre_tokenizer = tk.pre_tokenizers.Split(tk.Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = tk.decoders.Fuse()
    else:  # words: the same splitting rule as WordTokenizer
        vocab = {w: i for i, w in enumerate(tokenizer.words)}
        hf = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token=UNK_TEXT))
        hf.pre_tokenizer = tk.pre_tokenizers.Split(tk.Regex(_WORD_RE.pattern), behavior="isolated")
        hf.decoder = tk.decoders.Fuse()
    hf.add_special_tokens([tk.AddedToken(EOS_TEXT, special=True, normalized=False)])
    hf.post_processor = tk.processors.TemplateProcessing(single=f"{EOS_TEXT} $A", pair=f"{EOS_TEXT} $A $B",
                                                         special_tokens=[(EOS_TEXT, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=hf, bos_token=EOS_TEXT, eos_token=EOS_TEXT,
                                   unk_token=UNK_TEXT if tokenizer.kind == "word" else None,
                                   clean_up_tokenization_spaces=False, model_max_length=None)


def save_transformers(model: MiniGPT, tokenizer: Tokenizer, out: Path,
                      dtype: torch.dtype = torch.float32) -> Path:
    """Write a transformers model directory: config.json, model.safetensors, generation_config.json,
    tokenizer.json, tokenizer_config.json (and special_tokens_map.json where the version writes it).
    pretrained.save_pretrained(..., format="transformers") calls this into a temporary directory
    and moves the files into place one by one, atomically."""
    transformers.utils.logging.disable_progress_bar()  # one line from `minigpt export`, no bars
    hf_model = to_transformers(model, tokenizer.eos_id).to(dtype)
    hf_model.generation_config.eos_token_id = hf_model.generation_config.bos_token_id = tokenizer.eos_id
    hf_model.generation_config.pad_token_id = tokenizer.eos_id
    hf_model.save_pretrained(out)
    to_hf_tokenizer(tokenizer).save_pretrained(out)
    return out


__all__ = ["MiniGPTConfig", "MiniGPTForCausalLM", "gpt2_compatible", "save_transformers", "to_gpt2",
           "to_hf_tokenizer", "to_transformers", "transformers", "window_start"]
