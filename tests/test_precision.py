"""bf16: autocast runs the bf16 kernel and matches fp32, training in it learns like fp32, and
`auto` picks it only where the CPU has bf16 units and the model is wide enough."""

import json

import pytest
import torch

from minigpt import ModelConfig, TrainConfig, UserError, train
from minigpt import precision as precision_mod
from minigpt.precision import attention_kernel, autocast, resolve_precision

from test_fast_paths import model

CPU = torch.device("cpu")


def test_bf16_autocast_runs_the_bf16_kernel_and_matches_fp32(monkeypatch):
    net = model()
    x = torch.randint(0, 20, (4, 16))
    y = torch.randint(0, 20, (4, 16))
    _, loss32, _ = net(x, y)
    loss32.backward()
    grads32 = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    calls = []
    real = type(net.blocks[0].attn).baddbmm_attention
    monkeypatch.setattr(type(net.blocks[0].attn), "baddbmm_attention",
                        lambda self, *a: calls.append(1) or real(self, *a))
    net.prepare(attention_kernel("bf16", CPU))  # what train() does for a bf16 run on a CPU
    with autocast("bf16", CPU):
        logits, loss16, _ = net(x, y)
    loss16.backward()
    assert logits.dtype == torch.bfloat16 and len(calls) == 2  # both layers took the bf16 kernel
    assert loss16.dtype == torch.float32  # the loss itself is computed in fp32
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.01)
    for p, g32 in zip(net.parameters(), grads32):
        assert p.grad.dtype == torch.float32  # weights and their gradients stay fp32
        cosine = torch.nn.functional.cosine_similarity(p.grad.flatten(), g32.flatten(), dim=0)
        assert cosine > 0.98


def test_bf16_training_learns_like_fp32(tmp_path, story_file):
    """Same seed, same steps: the held-out loss under bf16 autocast is within noise of fp32."""
    losses = {}
    for prec in ("fp32", "bf16"):
        out = train(ModelConfig(block_size=32, n_embd=64, num_heads=4, n_layers=2),
                    TrainConfig(data=[story_file], batch_size=16, max_steps=80, eval_interval=80,
                                eval_batches=4, sample_chars=0, threads=1, warmup_steps=10,
                                plot_loss=False, precision=prec),
                    tmp_path / prec, log=lambda *a: None)
        record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        losses[prec] = record["val_nats"]
        assert json.loads((out / "config.json").read_text())["train"]["precision"] == prec
    assert losses["bf16"] < 1.5  # it learned (a fresh model is at ln(vocab) ~ 3.4)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


def test_auto_precision(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_bf16_features", lambda: ["avx512_bf16"])
    assert resolve_precision("auto", CPU, 128)[0] == "bf16"
    assert resolve_precision("auto", CPU, 32)[0] == "fp32"  # too narrow to gain
    assert resolve_precision("fp32", CPU, 128)[0] == "fp32"  # the flag overrides
    monkeypatch.setattr(precision_mod, "cpu_bf16_features", lambda: [])
    assert resolve_precision("auto", CPU, 512) == ("fp32", "this CPU has no bf16 instructions")
    assert resolve_precision("bf16", CPU, 32)[0] == "bf16"
    with pytest.raises(UserError, match="precision must be"):
        resolve_precision("fp16", CPU, 128)


def test_cpu_features_are_read_from_the_flags_line():
    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile amx_bf16\n"
    assert precision_mod.cpu_bf16_features(flags) == ["avx512_bf16", "amx_bf16"]
    # whole flag names only: a longer name that contains one is not it
    assert precision_mod.cpu_bf16_features("flags : avx512f avx512_bf16x amx_bf16_v2\n") == []
    assert precision_mod.cpu_bf16_features("processor : 0\nmodel name : some CPU\n") == []
