"""The fast paths give the reference results: bf16 autocast, the bf16 attention kernel, the
preallocated KV cache with decode(), the one-pass sampler; plus precision choice, presets and
the default thread count. (How fast they are is for bench/, not for tests.)"""

import json
import os
import subprocess
import sys

import pytest
import torch

from minigpt import MiniGPT, ModelConfig, SampleConfig, TrainConfig, UserError, train
from minigpt import precision as precision_mod
from minigpt.device import default_threads, physical_cores
from minigpt.generate import filter_logits, sample_next
from minigpt.model import KVCache
from minigpt.precision import attention_kernel, autocast, resolve_precision

from test_cli import TINY, run

CPU = torch.device("cpu")


def model(**kw) -> MiniGPT:
    torch.manual_seed(3)
    cfg = dict(vocab_size=20, block_size=16, n_embd=64, num_heads=4, n_layers=2)
    return MiniGPT(ModelConfig(**{**cfg, **kw}))


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


@pytest.mark.parametrize("kernel", ["sdpa", "baddbmm"])
def test_the_cache_fed_one_position_at_a_time_equals_the_full_forward(kernel):
    net = model().eval().prepare(kernel)
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


def test_sampler_draws_from_the_filtered_distribution():
    torch.manual_seed(0)
    logits = torch.randn(1, 12) * 2
    draws = 40_000
    for options in ({}, {"top_k": 4}, {"top_p": 0.7}, {"top_k": 6, "top_p": 0.9},
                    {"temperature": 0.5, "top_p": 0.8}):
        cfg = SampleConfig(**{"temperature": 1.0, **options})
        expected = torch.softmax(filter_logits(logits, cfg), dim=-1)[0]
        tokens = sample_next(logits.expand(draws, -1), cfg, torch.Generator().manual_seed(1))
        observed = torch.bincount(tokens, minlength=12).float() / draws
        assert torch.all(observed[expected == 0] == 0), options  # never a filtered-out token
        assert torch.allclose(observed, expected, atol=0.01), options


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


def test_cpu_feature_detection_reads_real_flags():
    flags = precision_mod.cpu_bf16_features()
    assert set(flags) <= {"avx512_bf16", "amx_bf16"}
    if os.path.exists("/proc/cpuinfo"):
        text = open("/proc/cpuinfo").read()
        assert ("avx512_bf16" in flags) == (" avx512_bf16" in text)


def test_seed_preset_with_command_line_override(tmp_path, story_file):
    out = tmp_path / "run"
    result = run("train", "--preset", "seed", "--data", story_file, "--out", str(out),
                 "--max-steps", "2", *TINY)
    assert result.returncode == 0, result.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["learning_rate"] == 3e-4 and saved["train"]["precision"] == "fp32"
    assert saved["train"]["weight_decay"] == 0.0 and saved["train"]["min_lr_ratio"] == 1.0
    assert saved["train"]["optimizer"] == "adamw"  # the seed trained with Adam, not Muon
    assert saved["train"]["batch_size"] == 8  # the command line wins over the preset
    assert saved["model"]["n_embd"] == 32
    bad = run("train", "--preset", "fastest", "--data", story_file, "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "invalid choice: 'fastest'" in bad.stderr


def test_default_threads_are_physical_cores():
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert default_threads() == cores


ALLOCATION_ROUNDS = """
import ctypes, ctypes.util, resource, torch
from minigpt.device import keep_freed_memory
def faults_per_round():  # a step's worth of activations: 30 MB in 3 MB tensors, written, freed
    def one_round():
        tensors = [torch.ones(3 << 20, dtype=torch.uint8) for _ in range(10)]
        del tensors
    one_round(); one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "gnu_get_libc_version"):
    print("not-glibc"); raise SystemExit
# glibc's starting values, pinned (it moves them as it sees large frees, depending on history):
libc.mallopt(-3, 128 << 10); libc.mallopt(-1, 128 << 10)  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
print(faults_per_round(), keep_freed_memory(), faults_per_round())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, on Linux")
def test_keep_freed_memory_stops_page_faults_between_steps():
    out = subprocess.run([sys.executable, "-c", ALLOCATION_ROUNDS], capture_output=True,
                         text=True, check=True).stdout.split()
    if out == ["not-glibc"]:
        pytest.skip("the C library is not glibc")
    default, applied, kept = float(out[0]), out[1], float(out[2])
    assert applied == "True"
    # glibc's defaults hand each freed 3 MB block back to the kernel, so every round faults most
    # of its 7,680 pages in again; kept in the heap, they are reused without a fault.
    assert default > 3000
    assert kept < 300


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux's RssFile")
def test_release_pages_returns_a_memory_maps_touched_pages(tmp_path):
    import numpy as np

    from minigpt.data import get_batch, release_pages

    def rss_file_kb() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        return 0

    path = tmp_path / "ids.bin"
    path.write_bytes(bytes(range(50)) * 1_000_000)  # 50 MB of token ids
    ids = np.memmap(path, dtype=np.uint8, mode="r")
    before = rss_file_kb()
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = get_batch(ids, 16, 64, generator)
    assert torch.equal(x[:, 1:], y[:, :-1])
    touched = rss_file_kb()
    assert touched - before > 5_000  # hundreds of random windows mapped megabytes
    release_pages(ids)
    assert rss_file_kb() - before < 1_000
    x2, _ = get_batch(ids, 16, 64, torch.Generator().manual_seed(0))  # still readable, same data
    assert torch.equal(x2, get_batch(np.array(ids), 16, 64, torch.Generator().manual_seed(0))[0])


def test_the_traced_decode_step_is_the_forward_itself():
    """fastpath.decode_step is forward() recorded by torch.fx: the same logits, bit for bit,
    for rows at the same and at different positions, and the cache advances the same way."""
    from minigpt.fastpath import decode_step

    net = model().eval()
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
    net.head.weight = torch.nn.Parameter(net.head.weight.detach().clone())
    assert decode_step(net) is not step  # ... and again when its parameters are other tensors
    assert decode_step(net.train()) is None  # dropout would act: forward() runs itself
    net.eval().set_attention("explicit")
    assert decode_step(net) is None
    net.set_attention("fast")
    handle = net.blocks[0].register_forward_hook(lambda *a: None)
    assert decode_step(net) is None  # hooks only run through forward()
    handle.remove()
    assert decode_step(net.prepare("baddbmm")) is None
