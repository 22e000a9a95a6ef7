"""The bundled model, Hub-style save/load, and `minigpt report`."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minigpt import UserError, evaluate, from_pretrained, generate, load, pretrained, save_pretrained
from minigpt.pretrained import BUNDLED_DIR, resolve
from minigpt.report import story_measures

ROOT = Path(__file__).resolve().parents[1]

# Stories written for this test (not taken from any dataset), in the plain style of TinyStories.
OUR_STORIES = [
    "Once upon a time, there was a little bird named Pip. Pip lived in a big tree near a pond. "
    "Every morning, Pip sang a happy song for his friends.\nOne day, Pip saw a frog on a rock. "
    "\"Hello, frog!\" said Pip. \"Do you want to sing with me?\" The frog said, \"Yes!\" and they "
    "sang together all day. They were very happy.",
    "Tom had a red ball. He liked to play with it in the garden. One day, the ball rolled under "
    "the fence. Tom was sad. His mom came and helped him find it. \"Thank you, Mom!\" said Tom. "
    "He gave her a big hug, and they played with the ball together.",
    "Lily and her dog Max went to the park. The sun was warm and the sky was blue. Max ran to the "
    "big tree and barked. Lily laughed and ran after him. Then they sat on the grass and ate "
    "apples. Lily said, \"This is the best day ever!\"",
    "There was a small boat on the lake. A girl named Sue wanted to ride in it. Her dad said, "
    "\"We must be careful and wear our jackets.\" Sue nodded. They rowed the boat to the middle "
    "of the lake and saw many fish. Sue smiled. She learned that being careful is good.",
]


@pytest.fixture()
def offline(monkeypatch):
    """No network at all: any connection attempt fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the test tried to use the network")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_bundled_model_is_small_and_loads_offline(offline):
    size = sum(f.stat().st_size for f in BUNDLED_DIR.iterdir())
    assert size <= 10_000_000
    model, tok, config = from_pretrained()  # no source: the bundled model
    assert tok.kind == "char" and model.num_parameters() > 1_000_000
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert config["summary"]["held_out_bits_per_char"] < 1.5
    assert resolve("bundled") == BUNDLED_DIR and load("bundled")[0].config == model.config


def test_bundled_model_generates_deterministically_with_a_seed(offline):
    model, tok, _ = from_pretrained("bundled")
    first = generate(model, tok, "Once upon a time", max_new_tokens=150, seed=42)
    again = generate(model, tok, "Once upon a time", max_new_tokens=150, seed=42)
    other = generate(model, tok, "Once upon a time", max_new_tokens=150, seed=43)
    assert first == again and first != other
    assert first.startswith("Once upon a time") and len(first) > len("Once upon a time") + 20


def test_bundled_model_scores_well_on_stories_it_never_saw(offline, tmp_path):
    held = tmp_path / "ours.txt"
    held.write_text("\n<|endoftext|>\n".join(OUR_STORIES) + "\n", encoding="utf-8")
    model, tok, _ = from_pretrained("bundled")
    result = evaluate(model, tok, str(held))
    assert result["chars"] > 1000 and result["skipped_chars"] == 0
    assert result["bits_per_char"] < 1.2, result  # measured 0.85 (the previous model); an untrained model scores ~6.2


def test_load_without_a_spec_takes_the_newest_run_else_the_bundled_model(tiny_run, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert resolve() == BUNDLED_DIR and "bundled story model" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").symlink_to(tiny_run, target_is_directory=True)
    model, _, config = pretrained.load(device="cpu")
    assert resolve() == Path("runs/tiny") and model.config.n_embd == 32
    assert config == from_pretrained(tiny_run)[2] and not model.training


def test_hub_id_fails_fast_and_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # nothing cached
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot be reached"):
        from_pretrained("someone/tiny-stories-model")
    with pytest.raises(UserError, match="cannot be reached"):
        from_pretrained("hf://someone/tiny-stories-model")
    assert time.monotonic() - start < 5


def test_save_pretrained_round_trip(tiny_run, tmp_path):
    model, tok, _ = load(tiny_run, "cpu")
    x = torch.tensor([tok.encode("Once upon a time, Tom had.")])
    for dtype, tolerance in ((torch.float32, 0.0), (torch.float16, 2e-2)):
        out = save_pretrained(model, tok, tmp_path / str(dtype), {"note": "test"}, dtype=dtype)
        assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "tokenizer.json"}
        again, tok2, config = from_pretrained(out)
        assert config["note"] == "test" and tok2.decode(x[0].tolist()) == tok.decode(x[0].tolist())
        with torch.no_grad():
            diff = (again(x)[0] - model(x)[0]).abs().max().item()
        assert diff <= tolerance, (dtype, diff)


def test_export_command_and_report(tiny_run, tmp_path):
    from minigpt.cli import main

    out = tmp_path / "exported"
    assert main(["export", "--checkpoint", str(tiny_run), "--out", str(out), "--dtype", "fp16"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["summary"]["step"] == 120 and config["weights_dtype"] == "float16"
    words = (out / "words.txt").read_text().split()
    assert {"once", "upon", "kite"} <= set(words) and "endoftext" not in words
    from minigpt.report import report
    r = report(out, stories=4, max_new_chars=300, seed=1)
    g = r["generated"]
    assert g["stories"] == 4 and 0 <= g["ended_share"] <= 1 and 0 < g["real_word_share"] <= 1
    assert 0 < g["distinct_2"] <= 1 and 0 <= g["repetition_rate"] < 1 and len(r["samples"]) == 3
    assert r == report(out, stories=4, max_new_chars=300, seed=1)  # seeded: the same report
    run_report = report(tiny_run, stories=2, max_new_chars=100)  # a run: its own held-out split
    assert 0 < run_report["held_out"]["bits_per_char"] < 8


def test_story_measures_on_known_text():
    m = story_measures(["the cat sat on the mat the cat sat on the mat", "a dog ran"],
                       vocabulary={"the", "cat", "sat", "on", "mat", "a", "dog"})
    assert m["real_word_share"] == pytest.approx(14 / 15)  # "ran" is not in the vocabulary
    # pairs: 11 in story one (5 distinct + ... ) and 2 in story two
    pairs = ["the cat", "cat sat", "sat on", "on the", "the mat", "mat the"]
    assert m["distinct_2"] == pytest.approx((len(pairs) + 2) / 13)
    # story one: 9 four-grams, 6 distinct -> 3 repeats; story two: no four-gram
    assert m["repetition_rate"] == pytest.approx(3 / 9)


def test_cli_without_checkpoint_uses_the_bundled_model(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "minigpt", "generate", "Once upon a time",
                             "--seed", "3", "--max-new-chars", "60"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bundled story model" in result.stderr
    assert result.stdout.startswith("Once upon a time") and len(result.stdout.strip()) == 16 + 60


def test_serve_shows_the_bundled_model_facts():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from minigpt.serve import create_app

    facts = TestClient(create_app("bundled", engine_thread=False)).get("/api/model").json()
    assert facts["run"] == "tinystories-char" and facts["held_out_bits_per_char"] < 1.5
