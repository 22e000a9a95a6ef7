"""The transformer's properties: shapes, causality, both attention paths agree, it can learn.

The proofs that a path equals its reference run for every option of the architecture ladder
(conftest.LADDER); what each option does is tests/test_ladder.py."""

import pytest
import torch

from minigpt import MiniGPT, ModelConfig, UserError
from minigpt.model import KVCache

from conftest import LADDER, shaken


def tiny(attention="fast", dropout=0.0, ladder=None, **kw) -> MiniGPT:
    """A small model; with `ladder` options its weights are also moved off their initial values."""
    torch.manual_seed(0)
    cfg = dict(vocab_size=20, block_size=16, n_embd=32, num_heads=4, n_layers=2, dropout=dropout,
               attention=attention)
    cfg.update(kw)
    model = MiniGPT(ModelConfig(**cfg, **(ladder or {})))
    return shaken(model) if ladder else model


def test_shapes_and_loss():
    model = tiny()
    ids = torch.randint(0, 20, (3, 16))
    logits, loss, weights = model(ids, ids)
    assert logits.shape == (3, 16, 20) and weights is None
    assert loss.ndim == 0 and loss.item() == pytest.approx(torch.log(torch.tensor(20.0)).item(), rel=0.1)
    _, _, weights = model(ids, need_weights=True)  # (layers, B, H, T, T), asked for
    assert weights.shape == (2, 3, 4, 16, 16)


@pytest.mark.parametrize("ladder", LADDER)
@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_causal_later_characters_never_change_earlier_logits(attention, ladder):
    model = tiny(attention, ladder=ladder).eval()
    a = torch.randint(0, 20, (1, 16))
    b = a.clone()
    b[0, 10:] = (b[0, 10:] + 1) % 20
    la, _, _ = model(a)
    lb, _, _ = model(b)
    assert torch.allclose(la[0, :10], lb[0, :10], atol=1e-6)
    assert not torch.allclose(la[0, 10:], lb[0, 10:], atol=1e-4)


@pytest.mark.parametrize("ladder", LADDER)
def test_explicit_equals_fast_outputs_and_gradients(ladder):
    ids = torch.randint(0, 20, (2, 16))
    models = {kind: tiny(kind, ladder=ladder) for kind in ("fast", "explicit")}
    models["explicit"].load_state_dict(models["fast"].state_dict())
    grads, losses = {}, {}
    for kind, model in models.items():
        logits, loss, _ = model(ids, ids)
        loss.backward()
        losses[kind] = logits
        grads[kind] = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert torch.allclose(losses["fast"], losses["explicit"], atol=1e-5)
    for name in grads["fast"]:
        assert torch.allclose(grads["fast"][name], grads["explicit"][name], atol=1e-5), name


def test_set_attention_switches_every_layer():
    model = tiny("fast")
    model.set_attention("explicit")
    assert all(b.attn.attention == "explicit" for b in model.blocks)
    model.eval()
    ids = torch.randint(0, 20, (1, 5))
    for kind in ("fast", "explicit"):  # either path hands back the weights when asked
        model.set_attention(kind)
        weights = model(ids, need_weights=True)[2][0, 0, 0]
        assert torch.allclose(weights.sum(-1), torch.ones(5))
        assert torch.all(weights.triu(1) == 0)  # nothing attends to the future
    # and nothing is left behind on the modules for another caller to read
    assert not any(hasattr(b.attn, "last_weights") for b in model.blocks)


@pytest.mark.parametrize("ladder", LADDER)
@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_cached_forward_equals_full_forward(attention, ladder):
    model = tiny(attention, ladder=ladder).eval()
    ids = torch.randint(0, 20, (1, 12))
    full, _, _ = model(ids)
    cache = KVCache(model.config)
    with torch.no_grad():
        first, _, _ = model(ids[:, :7], cache=cache)  # a prompt of 7 ...
        rest, _, _ = model(ids[:, 7:], cache=cache)  # ... then the next 5, positions 7..11
    assert cache.lengths.tolist() == [12]
    assert torch.allclose(full[:, :7], first, atol=1e-5)
    assert torch.allclose(full[:, 7:], rest, atol=1e-5)


@pytest.mark.parametrize("ladder", LADDER)
@pytest.mark.parametrize("attention", ["fast", "explicit"])
def test_one_forward_advances_rows_at_different_positions(attention, ladder):
    """Three independent streams of different lengths in one cache: a batched step gives each
    row the logits it gets alone, and a new prompt can be fed into one row of a live batch."""
    model = tiny(attention, ladder=ladder).eval()
    torch.manual_seed(5)
    seqs = [torch.randint(0, 20, (n,)) for n in (3, 9, 6)]
    nxt = torch.randint(0, 20, (3, 1))
    cache = KVCache(model.config, batch=3)
    with torch.no_grad():
        for row, seq in enumerate(seqs):  # prefill each row alone: a view of that row
            model(seq[None], cache=cache.rows(row, row + 1))
        assert cache.lengths.tolist() == [3, 9, 6]
        batched, _, weights = model(nxt, cache=cache, need_weights=True)
        for row, seq in enumerate(seqs):
            alone = model(torch.cat([seq, nxt[row]])[None])[0][0, -1]
            assert torch.allclose(batched[row, -1], alone, atol=1e-5), row
            seen = weights[:, row, :, 0]  # (layers, heads, keys up to the longest row)
            assert torch.all(seen[..., len(seq) + 1:] == 0)  # never another row's length
        assert cache.lengths.tolist() == [4, 10, 7]
        more = torch.randint(0, 20, (3, 2))
        two, _, _ = model(more, cache=cache)  # T > 1 at mixed lengths too
        assert cache.lengths.tolist() == [6, 12, 9]
        for row, seq in enumerate(seqs):
            alone = model(torch.cat([seq, nxt[row], more[row]])[None])[0][0, -2:]
            assert torch.allclose(two[row], alone, atol=1e-5), row
        with pytest.raises(ValueError, match="exceeds block_size"):
            model(torch.randint(0, 20, (3, 5)), cache=cache)  # row 1 would reach 17 > 16


def test_residual_projections_get_scaled_init():
    model = tiny(n_layers=8)
    std = model.blocks[0].attn.proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.2)  # 0.02 / sqrt(2 * 8)


def test_overfits_a_tiny_text():
    torch.manual_seed(0)
    model = tiny()
    data = torch.tensor([i % 7 for i in range(17)]).unsqueeze(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        _, loss, _ = model(data[:, :-1], data[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="block_size"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("bad, message", [
    (dict(num_heads=3), "must divide n_embd"),
    (dict(n_embd=0), "n_embd must be a positive integer"),
    (dict(n_layers=-1), "n_layers must be a positive integer"),
    (dict(dropout=1.0), "dropout must be in"),
    (dict(attention="flash"), "attention must be"),
])
def test_bad_model_config(bad, message):
    with pytest.raises(UserError, match=message):
        ModelConfig(**bad).validate()


def test_attention_dropout_has_its_own_knob():
    both = MiniGPT(ModelConfig(vocab_size=20, block_size=8, n_embd=16, num_heads=2, n_layers=1,
                               dropout=0.2))
    assert both.blocks[0].attn.dropout == 0.2 and both.blocks[0].attn.resid_dropout.p == 0.2
    resid_only = MiniGPT(ModelConfig(vocab_size=20, block_size=8, n_embd=16, num_heads=2, n_layers=1,
                                     dropout=0.2, attn_dropout=0.0))
    assert resid_only.blocks[0].attn.dropout == 0.0 and resid_only.blocks[0].attn.resid_dropout.p == 0.2
    with pytest.raises(UserError, match="attn_dropout"):
        ModelConfig(attn_dropout=1.5).validate()
