"""Sampling and generation: the KV cache equals recomputation, filters do what they say."""

import pytest
import torch

from minigpt import MiniGPT, ModelConfig, SampleConfig, UserError, generate, load
from minigpt.generate import filter_logits, generate_ids, make_generator
from minigpt.model import KVCache


def model_with_block(block=16) -> MiniGPT:
    torch.manual_seed(1)
    return MiniGPT(ModelConfig(vocab_size=12, block_size=block, n_embd=32, num_heads=4,
                               n_layers=2, dropout=0.0)).eval()


@pytest.mark.parametrize("prompt_len, new", [(3, 10), (5, 40), (20, 30)])  # past block_size too
def test_kv_cache_gives_the_same_story_as_recompute(prompt_len, new):
    model = model_with_block()
    prompt = list(range(1, prompt_len + 1))
    prompt = [p % 12 for p in prompt]
    stories = {}
    for use_cache in (True, False):
        cfg = SampleConfig(max_new_tokens=new, temperature=1.0, use_cache=use_cache, stop_at_eos=False)
        stories[use_cache] = list(generate_ids(model, prompt, cfg, None, make_generator(7)))
    assert len(stories[True]) == new
    assert stories[True] == stories[False]


@pytest.mark.parametrize("use_cache", [True, False])
def test_first_allowed_limits_only_the_first_token(use_cache):
    model = model_with_block()
    prompt = [1, 2, 3]
    greedy = SampleConfig(max_new_tokens=6, greedy=True, use_cache=use_cache, stop_at_eos=False)
    free = list(generate_ids(model, prompt, greedy))
    forced = next(t for t in range(12) if t != free[0])
    only = torch.zeros(12, dtype=torch.bool)
    only[forced] = True
    out = list(generate_ids(model, prompt, greedy, first_allowed=only))
    # The first token is the one allowed; after it, greedy decoding goes on as from prompt + it.
    assert out[0] == forced
    assert out[1:] == list(generate_ids(model, prompt + [forced], greedy))[:5]
    sampled = SampleConfig(max_new_tokens=1, temperature=1.5, use_cache=use_cache, stop_at_eos=False)
    firsts = {next(generate_ids(model, prompt, sampled, None, make_generator(s), only)) for s in range(20)}
    assert firsts == {forced}


def test_kv_cache_logits_equal_recompute_logits_step_by_step():
    model = model_with_block()
    seq = [1, 2, 3]
    cache = KVCache(model.config)
    model(torch.tensor([seq]), cache=cache)
    for token in [4, 5, 6, 7, 8]:
        cached, _, _ = model(torch.tensor([[token]]), cache=cache)
        seq.append(token)
        full, _, _ = model(torch.tensor([seq]))
        assert torch.allclose(cached[0, -1], full[0, -1], atol=1e-5)


def test_greedy_is_deterministic_and_picks_argmax():
    model = model_with_block()
    cfg = SampleConfig(max_new_tokens=5, greedy=True, stop_at_eos=False)
    a = list(generate_ids(model, [1, 2], cfg, None, make_generator(1)))
    b = list(generate_ids(model, [1, 2], cfg, None, make_generator(2)))
    assert a == b
    logits, _, _ = model(torch.tensor([[1, 2]]))
    assert a[0] == int(logits[0, -1].argmax())


def test_top_k_keeps_k_and_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_logits(logits, SampleConfig(temperature=1.0, top_k=2)).isfinite()
    assert kept.tolist() == [[True, True, False, False]]
    kept = filter_logits(logits, SampleConfig(temperature=1.0, top_p=0.8)).isfinite()
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    kept = filter_logits(logits, SampleConfig(temperature=1.0, top_p=0.81)).isfinite()
    assert kept.tolist() == [[True, True, True, False]]
    kept = filter_logits(logits, SampleConfig(temperature=1.0, top_p=0.1)).isfinite()
    assert kept.tolist() == [[True, False, False, False]]  # the top one always stays


def test_temperature_sharpens():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cold = filter_logits(logits, SampleConfig(temperature=0.5)).softmax(-1)
    hot = filter_logits(logits, SampleConfig(temperature=2.0)).softmax(-1)
    assert cold[0, 0] > logits.softmax(-1)[0, 0] > hot[0, 0]


def test_stops_at_end_of_story():
    model = model_with_block()
    with torch.no_grad():
        model.head.bias = None
        model.head.weight.zero_()
        model.head.weight[0] = 1.0  # make end-of-story overwhelmingly likely
        model.ln_f.bias.fill_(1.0)
    out = list(generate_ids(model, [1, 2], SampleConfig(max_new_tokens=10, greedy=True), 0, None))
    assert out == []


def test_trained_model_generates_from_prompt(tiny_run):
    model, tok, config = load(tiny_run, device="cpu")
    a = generate(model, tok, "Once upon a time", max_new_tokens=60, seed=3)
    b = generate(model, tok, "Once upon a time", max_new_tokens=60, seed=3)
    assert a == b and a.startswith("Once upon a time") and len(a) > len("Once upon a time")
    long_prompt = "Lily had a ball. " * 10  # longer than block_size (32): the window slides
    assert generate(model, tok, long_prompt, max_new_tokens=5, greedy=True).startswith(long_prompt)


def test_unknown_prompt_characters_are_named(tiny_run):
    model, tok, _ = load(tiny_run, device="cpu")
    with pytest.raises(UserError, match="'#'"):
        generate(model, tok, "Once # upon")
    # typographic quotes are mapped to ASCII first, like the training text
    assert generate(model, tok, "\u201cI like", max_new_tokens=1).startswith('"I like')


@pytest.mark.parametrize("bad, message", [
    (dict(top_p=0.0), "top_p must be in"), (dict(top_p=1.5), "top_p must be in"),
    (dict(temperature=-1.0), "temperature must be >= 0"), (dict(top_k=0), "top_k"),
    (dict(max_new_tokens=-5), "max_new_tokens"),
])
def test_bad_sampling_options(tiny_run, bad, message):
    model, tok, _ = load(tiny_run, device="cpu")
    with pytest.raises(UserError, match=message):
        generate(model, tok, "Once", **bad)
