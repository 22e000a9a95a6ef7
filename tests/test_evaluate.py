"""Held-out evaluation: every character scored once with the context the model is meant to have,
bits per character and perplexity from the same sum, a text file scored like its ids."""

import math

import numpy as np
import pytest
import torch

from minigpt import MiniGPT, ModelConfig, evaluate, load
from minigpt.evaluate import evaluate_ids


def test_evaluate_scores_every_character_once():
    torch.manual_seed(0)
    model = MiniGPT(ModelConfig(vocab_size=9, block_size=8, n_embd=16, num_heads=2, n_layers=1,
                                dropout=0.0)).eval()
    ids = np.random.default_rng(0).integers(0, 9, 53)
    result = evaluate_ids(model, ids, batch_size=4)
    assert result["chars"] == 52
    # Reference: score each prediction with the same context evaluate_ids gives it.
    loss = torch.nn.functional.cross_entropy
    x = torch.tensor(ids)
    total = loss(model(x[None, :8])[0][0], x[1:9], reduction="sum").item()
    start = 4
    scored = 8
    while scored < 52:
        start = min(start, 52 - 8)
        logits = model(x[None, start:start + 8])[0][0]
        first = scored - start
        total += loss(logits[first:], x[start + 1 + first:start + 9], reduction="sum").item()
        scored, start = start + 8, start + 4
    assert result["nats_per_char"] == pytest.approx(total / 52, rel=1e-5)
    assert result["bits_per_char"] == pytest.approx(result["nats_per_char"] / math.log(2))
    assert result["perplexity"] == pytest.approx(math.exp(result["nats_per_char"]))


def test_evaluate_a_file_matches_evaluating_its_ids(tiny_run, tmp_path):
    model, tok, _ = load(tiny_run, "cpu")
    path = tmp_path / "held.txt"
    path.write_text("Once upon a time, Mia had a cake.\n<|endoftext|>\nTom had a boat.\n")
    result = evaluate(model, tok, str(path))
    ids = [0] + tok.encode("Once upon a time, Mia had a cake.") + [0] + tok.encode("Tom had a boat.")
    assert result["nats_per_char"] == pytest.approx(evaluate_ids(model, ids)["nats_per_char"])
    assert result["chars"] == len(ids) - 1 and result["skipped_chars"] == 0
