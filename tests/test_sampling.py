"""Sampling draws from exactly the distribution the filters leave."""

import torch

from minigpt import SampleConfig
from minigpt.sampling import filter_logits, sample_next


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


def test_a_vanishing_top_p_keeps_the_likeliest_token():
    # 1e-300 is 0 in float32: the filter must still keep the top token, never drop them all.
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0]])
    for top_p in (1e-300, 5e-324, 1e-45):
        filtered = filter_logits(logits, SampleConfig(top_p=top_p))
        assert torch.isfinite(filtered).sum(dim=-1).tolist() == [1, 1]
        assert filtered.argmax(dim=-1).tolist() == [1, 0]
        gen = torch.Generator().manual_seed(0)
        assert sample_next(logits, SampleConfig(top_p=top_p), gen).tolist() == [1, 0]
