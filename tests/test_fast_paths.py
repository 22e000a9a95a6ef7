"""The fast paths give the reference results: the fused attention kernels equal the explicit
formula, the cache fed one position at a time equals the full forward, the inference layout of
Linear follows weight changes, and the traced per-token step is forward() itself. (How fast they
are is for bench/, not for tests.)"""

import pytest
import torch

from minigpt import MiniGPT, ModelConfig
from minigpt.model import KVCache
from minigpt.precision import attention_kernel

from conftest import LADDER, shaken

CPU = torch.device("cpu")


def model(ladder=None, **kw) -> MiniGPT:
    """A small model; with `ladder` options its weights are also moved off their initial values."""
    torch.manual_seed(3)
    cfg = dict(vocab_size=20, block_size=16, n_embd=64, num_heads=4, n_layers=2)
    net = MiniGPT(ModelConfig(**{**cfg, **kw, **(ladder or {})}))
    return shaken(net) if ladder else net


def test_fast_kernels_equal_the_explicit_formula():
    attn = model().blocks[0].attn.eval()
    torch.manual_seed(0)
    per_row = torch.rand(2, 1, 5, 12) > 0.3  # a cache's per-row mask
    per_row[..., 0] = True
    for tq, tk, mask in ((16, 16, None), (5, 12, None), (1, 9, None), (5, 12, per_row)):
        q = torch.randn(2, 4, tq, 16)
        k, v = torch.randn(2, 4, tk, 16), torch.randn(2, 4, tk, 16)
        expected, _ = attn.explicit_attention(q, k, v, mask)
        assert torch.allclose(attn.baddbmm_attention(q, k, v, mask, 0.0), expected, atol=1e-5)
        for kernel in ("sdpa", "baddbmm"):
            attn.use_kernel(kernel)
            assert torch.allclose(attn.fast_attention(q, k, v, mask), expected, atol=1e-5), kernel


def test_the_attention_kernel_is_chosen_once_per_precision_and_device():
    assert attention_kernel("bf16", CPU) == "baddbmm"
    assert attention_kernel("fp32", CPU) == "sdpa"
    assert attention_kernel("bf16", torch.device("cuda")) == "sdpa"
    net = model().prepare("baddbmm")
    assert {b.attn.kernel for b in net.blocks} == {"baddbmm"}
    with pytest.raises(ValueError, match="kernel must be"):
        net.prepare("flash")


@pytest.mark.parametrize("ladder", LADDER)
@pytest.mark.parametrize("kernel", ["sdpa", "baddbmm"])
def test_the_cache_fed_one_position_at_a_time_equals_the_full_forward(kernel, ladder):
    net = model(ladder).eval().prepare(kernel)
    seq = torch.randint(0, 20, (2, 16))
    cache = KVCache(net.config, batch=2)
    with torch.inference_mode():  # where generation runs (the fast Linear layout, no autograd)
        logits = net(seq[:, :6], cache=cache)[0][:, -1]  # a prompt of 6, then one at a time
        for t in range(6, 17):
            full = net(seq[:, :t])[0][:, -1]
            assert torch.allclose(logits, full, atol=1e-5), t
            if t < 16:
                logits = net(seq[:, t : t + 1], cache=cache)[0][:, -1]
        assert cache.lengths.tolist() == [16, 16]
        with pytest.raises(ValueError, match="exceeds block_size"):
            net(seq[:, :1], cache=cache)


def test_the_inference_layout_of_linear_follows_weight_changes():
    net = model().eval()
    x = torch.randint(0, 20, (1, 8))
    with torch.inference_mode():
        before = net(x)[0]
    with torch.no_grad():
        net.head.weight.mul_(2.0)  # an in-place change, as an optimizer step makes
    with torch.inference_mode():
        after = net(x)[0]
    assert torch.allclose(after, net(x)[0].detach(), atol=1e-6)  # same as the autograd path
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("ladder", LADDER)
def test_the_traced_decode_step_is_the_forward_itself(ladder):
    """fastpath.decode_step is forward() recorded by torch.fx: the same logits, bit for bit,
    for rows at the same and at different positions, and the cache advances the same way,
    whichever options of the ladder the model has."""
    from minigpt.fastpath import decode_step

    net = model(ladder).eval()
    step = decode_step(net)
    assert step is not None and "scaled_dot_product_attention" in step.code
    torch.manual_seed(4)
    with torch.inference_mode():
        for lengths in ((5, 5, 5), (2, 9, 5)):
            caches = [KVCache(net.config, batch=3) for _ in range(2)]
            for cache in caches:
                for row, n in enumerate(lengths):
                    net(torch.arange(1, n + 1)[None] % 20, cache=cache.rows(row, row + 1))
            ids = torch.randint(0, 20, (3, 1))
            for _ in range(3):
                expected = net(ids, cache=caches[0])[0]
                assert torch.equal(step(ids, caches[1]), expected)
            assert caches[0].lengths.tolist() == caches[1].lengths.tolist()
        with pytest.raises(ValueError, match="one position per row"):
            step(torch.zeros(3, 2, dtype=torch.long), caches[1])
    assert decode_step(net) is step  # traced once per model ...
    net.ln_f.weight = torch.nn.Parameter(net.ln_f.weight.detach().clone())
    assert decode_step(net) is not step  # ... and again when its parameters are other tensors
    assert decode_step(net.train()) is None  # dropout would act: forward() runs itself
    net.eval().set_attention("explicit")
    assert decode_step(net) is None
    net.set_attention("fast")
    handle = net.blocks[0].register_forward_hook(lambda *a: None)
    assert decode_step(net) is None  # hooks only run through forward()
    handle.remove()
    assert decode_step(net.prepare("baddbmm")) is None
