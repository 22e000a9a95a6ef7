"""Learning tools: attention maps, loss curves, the model summary, the next-character view."""

import json

import pytest
import torch
from matplotlib.image import imread

from minigpt import SampleConfig, UserError, load
from minigpt.cli import main
from minigpt.evaluate import eval_mode
from minigpt.introspect import attention_maps, next_char_probabilities, summary


def test_attention_rows_sum_to_one_and_never_look_ahead(tiny_run):
    model, tok, _ = load(tiny_run, "cpu")
    maps, labels = attention_maps(model, tok, "Lily had a cat.")
    n = len("Lily had a cat.") + 1
    assert maps.shape == (2, 4, n, n) and labels[0] == "<eos>" and "".join(labels[1:]) == "Lily had a cat."
    assert torch.allclose(maps.sum(-1), torch.ones(2, 4, n), atol=1e-5)
    assert torch.all(maps.triu(1) == 0)
    assert model.config.attention == "fast"  # switched back after looking


def test_attention_png_grid_and_zoom(tiny_run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["attention", "--checkpoint", str(tiny_run), "Tom had a kite", "--out", str(out)]) == 0
    grid = imread(out)
    zoom_path = tmp_path / "zoom.png"
    main(["attention", "--checkpoint", str(tiny_run), "Tom had a kite", "--layer", "1", "--head", "3",
          "--out", str(zoom_path)])
    zoom = imread(zoom_path)
    assert grid.shape[2] in (3, 4) and grid.std() > 0.05  # a real picture, not a blank
    # 4 heads side by side by 2 layers: the grid is wider than tall; one panel is square-ish.
    assert grid.shape[1] > grid.shape[0] and abs(zoom.shape[1] - zoom.shape[0]) < 0.25 * zoom.shape[0]
    assert "2 layers x 4 heads" in capsys.readouterr().out
    assert main(["attention", "--checkpoint", str(tiny_run), "Tom", "--layer", "5",
                 "--out", str(tmp_path / "x.png")]) == 2


def test_loss_plot_for_one_and_several_runs(tiny_run, tmp_path):
    assert (tiny_run / "loss.png").exists()  # drawn when training ended
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["plot", str(tiny_run), "--out", str(one)]) == 0
    assert main(["plot", str(tiny_run), str(tiny_run), "--out", str(two)]) == 0
    image = imread(one)
    assert image.shape[:2] == (round(4.5 * 110), 12 * 110) and image.std() > 0.05
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2  # not a run


def test_summary_parameter_total_equals_the_model(tiny_run, capsys):
    model, _, _ = load(tiny_run, "cpu")
    stages = summary(model, batch=3)
    assert sum(s.params for s in stages) == model.num_parameters()
    by_name = {s.name: s for s in stages}
    c = model.config
    assert by_name["head"].shape == (3, c.block_size, c.vocab_size)
    assert by_name["blocks.0.attn.qkv"].shape == (3, c.block_size, 3 * c.n_embd)
    assert by_name["  scores q @ k^T (B,H,T,T)"].shape == (3, c.num_heads, c.block_size, c.block_size)
    assert main(["summary", "--checkpoint", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert f"{model.num_parameters():,}" in next(ln for ln in out.splitlines() if ln.startswith("total"))
    assert f"activation {c.activation}, norm {c.norm}, positions " in out  # the run's own pieces


def test_summary_without_checkpoint_from_options(capsys):
    assert main(["summary", "--n-layers", "2", "--n-embd", "64", "--num-heads", "8"]) == 0
    assert "H = num_heads = 8, D = C / H = 8" in capsys.readouterr().out
    assert main(["summary", "--num-heads", "3"]) == 2


def test_next_character_probabilities_sum_to_one_and_follow_temperature(tiny_run):
    model, tok, _ = load(tiny_run, "cpu")
    everything = tok.vocab_size
    rows = next_char_probabilities(model, tok, "Once upon a ti", SampleConfig(temperature=1.0), top=everything)
    assert sum(r["prob"] for r in rows) == pytest.approx(1.0, abs=1e-5)
    assert [r["prob"] for r in rows] == sorted((r["prob"] for r in rows), reverse=True)
    assert all(r["prob"] == pytest.approx(r["sampled"], abs=1e-6) for r in rows)  # T=1, no filters
    cold = next_char_probabilities(model, tok, "Once upon a ti", SampleConfig(temperature=0.5), top=everything)
    hot = next_char_probabilities(model, tok, "Once upon a ti", SampleConfig(temperature=2.0), top=everything)
    assert cold[0]["sampled"] > rows[0]["prob"] > hot[0]["sampled"]  # colder = more peaked
    topk = next_char_probabilities(model, tok, "Once upon a ti", SampleConfig(temperature=1.0, top_k=2),
                                   top=everything)
    assert sum(r["sampled"] > 0 for r in topk) == 2
    assert sum(r["sampled"] for r in topk) == pytest.approx(1.0, abs=1e-5)


def test_next_command_prints_a_table_and_json(tiny_run, capsys):
    assert main(["next", "--checkpoint", str(tiny_run), "Once upon a ti", "--top", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and set(rows[0]) == {"char", "prob", "sampled"}
    assert main(["next", "--checkpoint", str(tiny_run), "Once", "--top-p", "0.5"]) == 0
    assert "top-p 0.5" in capsys.readouterr().out
    with pytest.raises(UserError, match="top_p"):
        next_char_probabilities(*load(tiny_run, "cpu")[:2], "Once", SampleConfig(top_p=0))


def test_looking_inside_leaves_a_training_model_in_training_mode(tiny_run):
    model, tok, _ = load(tiny_run, "cpu")
    model.train()
    attention_maps(model, tok, "Tom had a kite")
    next_char_probabilities(model, tok, "Once upon a ti")
    summary(model)
    assert model.training
    with pytest.raises(RuntimeError, match="inside"):  # put back even when the block fails
        with eval_mode(model):
            assert not model.training and not model.blocks[0].training
            raise RuntimeError("inside")
    assert model.training and model.blocks[0].training
