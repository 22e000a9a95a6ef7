"""The architecture ladder (minigpt/ladder.py): what each option *does*, not only that it runs.

That every path still equals its reference with each option (explicit == fast attention, cache ==
recompute, the traced decode step == forward) is proved in test_model.py, test_fast_paths.py and
test_engine.py over conftest.LADDER. Here: each idea's own property, its config checks, and one
small run with every option on, trained, resumed, written with and scored.
"""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from minigpt import (MiniGPT, ModelConfig, SampleConfig, TrainConfig, UserError, evaluate, generate,
                     load, train)
from minigpt.config import CLASSIC, MODERN, PRESETS, from_dict, load_toml, resolve, saved_model_fields
from minigpt.introspect import attention_maps, format_summary, next_char_probabilities, summary
from minigpt.prompt import prompt_ids
from minigpt.ladder import Rotary, relu2, rotate, softcap
from minigpt.options import build_parser, picked

from conftest import LADDER, shaken

EVERY = LADDER[-1].values[0]  # every option on
QUIET = dict(log=lambda *a: None)


def net(**kw) -> MiniGPT:
    """A small model of the seed's architecture with the options `kw` on, whatever the defaults."""
    torch.manual_seed(0)
    cfg = dict(vocab_size=20, block_size=16, n_embd=32, num_heads=4, n_layers=2, **CLASSIC)
    return MiniGPT(ModelConfig(**{**cfg, **kw}))


# --- activation -------------------------------------------------------------------------------

@pytest.mark.parametrize("activation, expected", [
    ("relu", lambda h: F.relu(h)), ("relu2", lambda h: F.relu(h) ** 2), ("gelu", F.gelu)])
def test_the_mlp_applies_the_chosen_activation(activation, expected):
    mlp = net(activation=activation).blocks[0].mlp
    x = torch.randn(2, 5, 32)
    assert torch.allclose(mlp(x), mlp.down(expected(mlp.up(x))), atol=1e-6)


def test_relu2_is_relu_squared():
    x = torch.linspace(-3, 3, 61)
    assert torch.equal(relu2(x), torch.where(x > 0, x * x, torch.zeros_like(x)))


# --- norm and qk_norm ---------------------------------------------------------------------------

def test_rmsnorm_gives_unit_rms_without_subtracting_the_mean():
    model = net(norm="rmsnorm")
    norm = model.blocks[0].ln1
    assert isinstance(norm, torch.nn.RMSNorm) and not any("bias" in n for n, _ in norm.named_parameters())
    x = 3.0 + torch.randn(4, 32)  # a large mean: LayerNorm would remove it, RMSNorm keeps it
    y = norm(x)
    assert torch.allclose(y.pow(2).mean(-1).sqrt(), torch.ones(4), atol=1e-3)  # unit RMS
    assert torch.allclose(y * x.pow(2).mean(-1, keepdim=True).sqrt(), x, atol=1e-3)  # x / rms(x)
    assert (y.mean(-1) > 0.9).all()  # the mean is still there
    assert isinstance(net().blocks[0].ln1, torch.nn.LayerNorm)  # the seed's


def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys():
    """Queries and keys are normalised per head, so scaling their weights 10x changes no score:
    a score cannot grow with the weights. Without qk_norm the same change sharpens attention."""
    for qk_norm in (True, False):
        attn = net(qk_norm=qk_norm).blocks[0].attn
        x = torch.randn(1, 8, 32)
        before = attn(x, need_weights=True)
        with torch.no_grad():
            attn.qkv.weight[:64] *= 10  # the rows that make q and k
            attn.qkv.bias[:64] *= 10
        after = attn(x, need_weights=True)
        change = (before[1] - after[1]).abs().max().item()  # in the attention weights
        assert change < 2e-3 if qk_norm else change > 0.05  # (RMSNorm's eps: not exactly 0)


# --- positions ----------------------------------------------------------------------------------

def test_rope_scores_depend_only_on_the_distance_between_positions():
    rotary = Rotary(head_size=16, block_size=64)
    q, k = torch.randn(1, 2, 10, 16), torch.randn(1, 2, 10, 16)
    scores = {}
    for shift in (0, 7, 40):
        rope = rotary(torch.arange(10) + shift)
        scores[shift] = rotate(q, *rope) @ rotate(k, *rope).transpose(-2, -1)
    assert torch.allclose(scores[0], scores[7], atol=1e-4)
    assert torch.allclose(scores[0], scores[40], atol=1e-4)
    assert not torch.allclose(scores[0], q @ k.transpose(-2, -1), atol=1e-3)  # positions do matter
    turned = rotate(q, *rotary(torch.arange(10) + 3))
    assert torch.allclose(turned.norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # only the direction turns


def test_rope_turns_each_pair_of_dimensions_by_position_times_its_speed():
    D, rotary = 8, Rotary(head_size=8, block_size=32)
    x = torch.randn(3, 5, D)
    turned = rotate(x, *rotary(torch.arange(5) + 2))[0]  # one row, positions 2..6
    for t in range(5):
        for i in range(D // 2):  # pair i: dimensions i and i + D/2, at speed 10000^(-2i/D)
            a = (t + 2) * 10000.0 ** (-2 * i / D)
            x1, x2 = x[0, t, i], x[0, t, i + D // 2]
            expected = (x1 * math.cos(a) - x2 * math.sin(a), x2 * math.cos(a) + x1 * math.sin(a))
            assert torch.allclose(turned[t, [i, i + D // 2]], torch.stack(expected), atol=1e-5)


def test_rope_has_no_position_table_and_rows_at_other_offsets_agree():
    model = shaken(net(positions="rope")).eval()
    assert model.position_embedding is None and not any("position" in n for n in model.state_dict())
    assert net(positions="rope").num_parameters() == net().num_parameters() - 16 * 32
    # Per-row positions (B, T) broadcast over heads like one row's (T,).
    rotary = model.rotary
    per_row = rotary(torch.tensor([[0, 1], [5, 6]]))[0]
    assert per_row.shape == (2, 1, 2, 8) and torch.equal(per_row[1, 0], rotary(torch.tensor([5, 6]))[0][0])
    with pytest.raises(UserError, match="must be even"):
        ModelConfig(n_embd=24, num_heads=8, positions="rope").validate()  # head size 3


# --- value embeddings and x0 mixing -------------------------------------------------------------

def test_value_embeddings_add_a_scaled_token_embedding_to_the_values():
    with_ve = shaken(net(value_embeddings=True)).eval()
    without = net().eval()
    without.load_state_dict(with_ve.state_dict(), strict=False)  # the same weights but the table
    ids = torch.randint(0, 20, (2, 12))
    assert not torch.allclose(with_ve(ids)[0], without(ids)[0], atol=1e-4)
    with torch.no_grad():
        for block in with_ve.blocks:
            block.attn.ve_scale.zero_()
    assert torch.allclose(with_ve(ids)[0], without(ids)[0], atol=1e-5)  # scale 0: the seed's values


def test_x0_mixing_starts_as_the_seed_block_and_learns_its_two_scalars():
    mixed, plain = net(x0_mixing=True), net()
    plain.load_state_dict(mixed.state_dict(), strict=False)
    ids = torch.randint(0, 20, (2, 12))
    assert torch.allclose(mixed(ids)[0], plain(ids)[0], atol=1e-6)  # a = 1, b = 0 at the start
    assert all(b.x0_mix.tolist() == [1.0, 0.0] for b in mixed.blocks)


def test_the_ladder_scalars_get_gradients():
    model = net(value_embeddings=True, x0_mixing=True)
    ids = torch.randint(0, 20, (2, 12))
    model(ids, ids)[1].backward()
    for block in model.blocks:
        assert block.x0_mix.grad.abs().min() > 0 and block.attn.ve_scale.grad.abs().item() > 0
    assert model.value_embedding.weight.grad.abs().sum() > 0


# --- zero init, tied head, soft cap --------------------------------------------------------------

def test_zero_init_makes_every_fresh_block_the_identity():
    model = net(zero_init=True)
    x = torch.randn(2, 9, 32)
    for block in model.blocks:
        assert torch.equal(block(x)[0], x)
        assert block.attn.proj.weight.abs().sum() == 0 and block.mlp.down.weight.abs().sum() == 0
    ids = torch.randint(0, 20, (1, 9))
    stream = model.token_embedding(ids) + model.position_embedding(torch.arange(9))
    assert torch.allclose(model(ids)[0], model.head(model.ln_f(stream)), atol=1e-6)
    assert net().blocks[0].attn.proj.weight.abs().sum() > 0  # the seed's scaled normal init


def test_tie_head_scores_characters_with_the_token_embedding_itself():
    tied, untied = net(tie_head=True), net()
    assert tied.head is None and "head.weight" not in tied.state_dict()
    assert tied.num_parameters() == untied.num_parameters() - 20 * 32
    ids = torch.randint(0, 20, (1, 6))
    with torch.no_grad():
        tied.token_embedding.weight[7] = 0.0  # one table: the head's row 7 is gone too
    assert torch.equal(tied(ids)[0][..., 7], torch.zeros(1, 6))
    assert untied.head is not None  # the seed's head has its own table


def test_softcap_bounds_the_logits_and_leaves_small_ones_alone():
    x = torch.linspace(-100, 100, 201)
    assert softcap(x, 5.0).abs().max() <= 5.0
    small = torch.linspace(-0.5, 0.5, 11)
    assert torch.allclose(softcap(small, 30.0), small, atol=1e-3)
    model = net(logit_softcap=2.0)
    with torch.no_grad():
        model.head.weight.mul_(1000)
    logits = model(torch.randint(0, 20, (2, 10)))[0]
    assert logits.abs().max() <= 2.0 and logits.abs().max() > 1.9


# --- configuration: old runs, checks, options, TOML ---------------------------------------------

def test_a_config_from_before_the_ladder_loads_as_the_seed(story_file, tmp_path):
    old = {"vocab_size": 20, "block_size": 16, "n_embd": 32, "num_heads": 4, "n_layers": 2,
           "ff_hidden_mult": 4, "dropout": 0.0, "attn_dropout": None, "attention": "fast", "bias": True}
    # whatever today's default is, a missing ladder field means the seed's choice
    assert saved_model_fields(old) == {**CLASSIC, **old}
    assert saved_model_fields({**old, "positions": "rope"})["positions"] == "rope"
    config = from_dict(ModelConfig, saved_model_fields(old), "old config.json model")
    assert (config.activation, config.norm, config.positions, config.logit_softcap) == \
           ("relu", "layernorm", "learned", None)
    assert not any((config.qk_norm, config.value_embeddings, config.x0_mixing, config.zero_init,
                    config.tie_head))
    a, b = net(**CLASSIC), MiniGPT(config)
    assert a.state_dict().keys() == b.state_dict().keys()  # the same tensors a seed run saved
    # a run directory written before the ladder loads through the same path
    run = tmp_path / "old-run"  # a seed-architecture run, its config.json made to predate the ladder
    train(ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=1, **CLASSIC),
          TrainConfig(data=[story_file], batch_size=4, max_steps=2, eval_interval=2, eval_batches=1,
                      sample_chars=0, threads=1, warmup_steps=1), run, **QUIET)
    saved = json.loads((run / "config.json").read_text())
    saved["model"] = {k: v for k, v in saved["model"].items() if k not in CLASSIC}
    (run / "config.json").write_text(json.dumps(saved))
    model, _, _ = load(run, "cpu")
    assert model.config.positions == "learned" and model.position_embedding is not None


def test_the_classic_and_modern_presets_build_the_seed_and_the_ladder_winners():
    classic, _ = resolve("classic")
    modern, _ = resolve("modern")
    assert {k: getattr(classic, k) for k in CLASSIC} == CLASSIC
    assert {k: getattr(modern, k) for k in MODERN} == MODERN
    seed = MiniGPT(dataclasses.replace(classic, vocab_size=20))
    assert seed.position_embedding is not None and seed.rotary is None
    assert isinstance(seed.blocks[0].ln1, torch.nn.LayerNorm) and seed.blocks[0].mlp.activation is F.relu
    ladder = MiniGPT(dataclasses.replace(modern, vocab_size=20))
    assert ladder.position_embedding is None and ladder.rotary is not None
    assert ladder.blocks[0].mlp.activation is F.gelu
    assert resolve("seed")[0].positions == "learned"  # the seed's recipe keeps the seed's model
    for name in PRESETS:  # every preset is the default training recipe unless it says otherwise
        assert resolve(name)[1].optimizer == ("adamw" if name in ("adamw", "seed") else "muon")


@pytest.mark.parametrize("bad, message", [
    (dict(activation="swish"), "activation must be"), (dict(norm="batchnorm"), "norm must be"),
    (dict(positions="alibi"), "positions must be"), (dict(qk_norm="yes"), "qk_norm must be true"),
    (dict(tie_head=1), "tie_head must be true"), (dict(logit_softcap=0.0), "logit_softcap must be >"),
    (dict(logit_softcap=-3.0), "logit_softcap must be >"),
    (dict(logit_softcap=float("inf")), "finite"), (dict(logit_softcap=float("nan")), "finite"),
    (dict(logit_softcap=1e6), "at most"), (dict(logit_softcap="15"), "must be a number")])
def test_bad_ladder_settings_are_refused(bad, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(**bad).validate()


def test_every_option_comes_from_the_command_line_and_from_toml(tmp_path):
    argv = ["train", "--data", "x", "--activation", "relu2", "--norm", "rmsnorm", "--qk-norm",
            "--positions", "rope", "--value-embeddings", "--x0-mixing", "--zero-init", "--tie-head",
            "--logit-softcap", "15"]
    args = build_parser().parse_args(argv)
    from_cli = resolve(None, None, picked(args, ModelConfig, TrainConfig))[0]
    toml = tmp_path / "ladder.toml"
    toml.write_text("[model]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in EVERY.items()))
    from_file = resolve(None, toml, {})[0]
    assert load_toml(toml)["model"] == EVERY
    for key, value in EVERY.items():
        assert getattr(from_cli, key) == value and getattr(from_file, key) == value, key
    defaults = resolve(None, None, picked(build_parser().parse_args(["train", "--data", "x"]),
                                          ModelConfig, TrainConfig))[0]
    assert defaults == ModelConfig()  # no option given: the seed's design


# --- the learning tools --------------------------------------------------------------------------

def test_the_summary_shows_rope_and_value_embeddings():
    model = net(**EVERY)
    stages = summary(model, batch=2)
    assert sum(s.params for s in stages) == model.num_parameters()
    by_name = {s.name: s for s in stages}
    assert by_name["rotary"].kind == "Rotary" and by_name["rotary"].params == 0
    assert by_name["value_embedding"].params == 20 * 32
    assert "  q, k turned by position (RoPE)" in by_name and "  q, k RMS-normalised (qk_norm)" in by_name
    text = format_summary(stages, model)
    assert "positions rotary (RoPE" in text and "value embeddings" in text
    assert "head tied to token_embedding" in text and "soft-capped at +-15" in text


def test_attention_maps_with_every_option(tiny_run):
    _, tok, _ = load(tiny_run, "cpu")
    model = shaken(MiniGPT(dataclasses.replace(net().config, vocab_size=tok.vocab_size, **EVERY)))
    maps, labels = attention_maps(model, tok, "Once upon")
    assert maps.shape == (2, 4, len(labels), len(labels))
    assert torch.allclose(maps.sum(-1), torch.ones_like(maps.sum(-1)), atol=1e-5)
    assert torch.all(maps.triu(1) == 0)


def test_the_next_character_view_and_the_summary_with_every_option(tiny_run):
    _, tok, _ = load(tiny_run, "cpu")
    model = shaken(MiniGPT(dataclasses.replace(net().config, vocab_size=tok.vocab_size, **EVERY)))
    rows = next_char_probabilities(model, tok, "Once upon a ti", SampleConfig(temperature=1.0),
                                   top=tok.vocab_size)
    assert sum(r["prob"] for r in rows) == pytest.approx(1.0, abs=1e-5)
    logits = model(torch.tensor([prompt_ids(tok, "Once upon a ti")]))[0][0, -1]
    assert rows[0]["char"] == tok.decode([int(logits.argmax())])  # the view shows this model's own
    stages = summary(model)
    assert sum(s.params for s in stages) == model.num_parameters()


# --- a run with every option on, end to end ------------------------------------------------------

def test_a_run_with_every_option_trains_resumes_writes_and_scores(tmp_path, story_file):
    def config(steps):
        return TrainConfig(data=[story_file], batch_size=4, max_steps=steps, eval_interval=3,
                           eval_batches=1, sample_chars=10, threads=1, warmup_steps=1)

    shape = ModelConfig(block_size=16, n_embd=16, num_heads=2, n_layers=2, **EVERY)
    straight = train(shape, config(6), tmp_path / "straight", **QUIET)
    halves = train(dataclasses.replace(shape), config(6), tmp_path / "halves", interrupt_at_step=3, **QUIET)
    train(None, config(6), halves, resume=True, **QUIET)
    a, tok, _ = load(straight, "cpu")
    b, _, _ = load(halves, "cpu")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name  # the ladder's scalars and tables resume exactly too
    saved = json.loads((halves / "config.json").read_text())["model"]
    assert {k: saved[k] for k in EVERY} == EVERY
    text = generate(b, tok, "Once", max_new_tokens=40, seed=1)  # past block_size: the window slides
    assert text.startswith("Once") and len(text) > len("Once")
    assert generate(b, tok, "Once", max_new_tokens=40, seed=1, use_cache=False) == text
    score = evaluate(b, tok, story_file, max_chars=2000)
    assert math.isfinite(score["bits_per_char"]) and score["bits_per_char"] > 0
