"""The optimizers: Muon's orthogonalization, its step, and its AdamW half against PyTorch's."""

import pytest
import torch

from minigpt import ModelConfig, TrainConfig
from minigpt.model import MiniGPT
from minigpt.optim import Muon, make_optimizer, orthogonalize


@pytest.mark.parametrize("shape", [(48, 48), (32, 96), (96, 32)])
def test_orthogonalize_flattens_the_singular_values(shape):
    torch.manual_seed(0)
    # An ill-conditioned matrix: singular values from 0.1 to 10.
    u, _ = torch.linalg.qr(torch.randn(shape[0], shape[0]))
    v, _ = torch.linalg.qr(torch.randn(shape[1], shape[1]))
    k = min(shape)
    s = torch.logspace(-1, 1, k)
    G = u[:, :k] @ torch.diag(s) @ v[:, :k].T
    O = orthogonalize(G, dtype=torch.float32)
    assert O.shape == G.shape
    sv = torch.linalg.svdvals(O)
    assert sv.max() < 1.25 and sv.min() > 0.6  # a 100-fold spread squeezed to about 1
    # Same singular vectors: O is U f(S) V^T, so U^T O V is diagonal.
    inner = u[:, :k].T @ O @ v[:, :k]
    assert (inner - torch.diag(torch.diagonal(inner))).abs().max() < 1e-3


def test_orthogonalize_a_batch_equals_one_at_a_time():
    G = torch.randn(3, 16, 40)
    batched = orthogonalize(G, dtype=torch.float32)
    for i in range(3):
        torch.testing.assert_close(batched[i], orthogonalize(G[i], dtype=torch.float32))


def test_adamw_groups_match_torch_adamw():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 7))
    b = torch.nn.Parameter(a.detach().clone())
    ours = Muon([{"params": [a], "weight_decay": 0.3}], lr=1e-2, betas=(0.9, 0.95))
    ref = torch.optim.AdamW([{"params": [b], "weight_decay": 0.3}], lr=1e-2, betas=(0.9, 0.95))
    for step in range(5):
        grad = torch.randn(5, 7)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_muon_step_is_the_scaled_orthogonalized_nesterov_momentum():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16, 64))
    start = w.detach().clone()
    opt = Muon([{"params": [w], "weight_decay": 0.1, "muon": True}], lr=0.01, momentum=0.5,
               ns_dtype=torch.float32)
    g1, g2 = torch.randn(16, 64), torch.randn(16, 64)
    w.grad = g1
    opt.step()
    expected = start * (1 - 0.01 * 0.1) - 0.01 * 0.2 * 64 ** 0.5 * orthogonalize(g1 + 0.5 * g1, dtype=torch.float32)
    torch.testing.assert_close(w.detach(), expected)
    w.grad = g2
    opt.step()
    momentum = 0.5 * g1 + g2
    expected = expected * (1 - 0.01 * 0.1) - 0.01 * 0.2 * 64 ** 0.5 * orthogonalize(g2 + 0.5 * momentum, dtype=torch.float32)
    torch.testing.assert_close(w.detach(), expected)


def test_make_optimizer_gives_muon_only_the_blocks_matrices():
    model = MiniGPT(ModelConfig(vocab_size=20, n_embd=32, num_heads=2, n_layers=2, block_size=16))
    opt = make_optimizer(model, TrainConfig(optimizer="muon", precision="fp32"))
    muon = {id(p) for g in opt.param_groups if g["muon"] for p in g["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in muon}
    assert names == {f"blocks.{i}.{m}.weight" for i in range(2)
                     for m in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down")}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)


def _reference_orthogonalize(G: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The textbook form, in float64: wide orientation, X <- a X + (b A + c A A) X, A = X X^T."""
    from minigpt.optim import NS_COEFFS
    a, b, c = NS_COEFFS
    X = G.double()
    tall = X.size(-2) > X.size(-1)
    if tall:
        X = X.transpose(-2, -1)
    X = X / X.norm(dim=(-2, -1), keepdim=True)
    for _ in range(steps):
        A = X @ X.transpose(-2, -1)
        X = a * X + (b * A + c * A @ A) @ X
    return X.transpose(-2, -1) if tall else X


@pytest.mark.parametrize("shape", [(4, 128, 512), (4, 512, 128), (2, 64, 64)])
def test_fast_orthogonalize_matches_the_textbook_form(shape):
    torch.manual_seed(1)
    G = torch.randn(shape)
    reference = _reference_orthogonalize(G).float()
    torch.testing.assert_close(orthogonalize(G, dtype=torch.float32), reference, rtol=0, atol=1e-4)
    # bf16 (the fast path training uses on CPUs with bf16 units): same within bf16 rounding,
    # small against the entries' typical size of 1 / sqrt(max(m, n)).
    error = (orthogonalize(G, dtype=torch.bfloat16) - reference).abs()
    assert error.max() < 0.25 / max(shape[1:]) ** 0.5
