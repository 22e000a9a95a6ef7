"""Issue 22: models and tokenizers exported to HuggingFace transformers (minigpt/hf.py).

The seed's architecture becomes a plain GPT2LMHeadModel, anything else our registered MiniGPT
class; either way the logits equal ours, greedy generate() writes our greedy text, pipeline()
works, and the tokenizer encodes and decodes like ours, for char, BPE and word tokenizers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
from conftest import LADDER, make_stories, shaken, write_txt  # noqa: E402

from minigpt import ModelConfig, TrainConfig, train  # noqa: E402
from minigpt.cli import main  # noqa: E402
from minigpt.config import CLASSIC, SampleConfig  # noqa: E402
from minigpt.errors import UserError  # noqa: E402
from minigpt.generate import generate_ids  # noqa: E402
from minigpt.model import MiniGPT  # noqa: E402
from minigpt.pretrained import export, load, save_pretrained  # noqa: E402
from minigpt.prompt import prompt_ids  # noqa: E402
from minigpt.tokenizer import CharTokenizer  # noqa: E402

import minigpt.hf as hf  # noqa: E402  (registers MiniGPTForCausalLM with the Auto classes)
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
PROMPTS = ["Once upon a time", "Once upon a time, Lily had a kite.\nLily", "\"I like my cat!\" said Tom. The end."]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, story_file):
    """Small trained runs, the seed's architecture, one per tokenizer kind (peaked enough that
    greedy decoding has no near-ties)."""
    made = {}
    for kind, vocab in (("char", None), ("bpe", 300), ("word", 60)):
        out = tmp_path_factory.mktemp("hf") / kind
        train(ModelConfig(block_size=96, n_embd=32, num_heads=4, n_layers=2, dropout=0.0, **CLASSIC),
              TrainConfig(data=[story_file], batch_size=16, max_steps=150, eval_interval=150, eval_batches=1,
                          sample_chars=0, threads=1, warmup_steps=10, tokenizer=kind,
                          tokenizer_vocab_size=vocab, plot_loss=False),
              out, log=lambda *a: None)
        made[kind] = out
    return made


def _ours_greedy(model, tokenizer, prompt: str, n: int) -> list[int]:
    return list(generate_ids(model, prompt_ids(tokenizer, prompt), SampleConfig(greedy=True, max_new_tokens=n),
                             eos_id=tokenizer.eos_id))


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
def test_the_seeds_architecture_is_a_plain_gpt2_with_our_logits_text_and_tokens(runs, kind, tmp_path):
    model, tokenizer, _ = load(runs[kind], "cpu")
    out = save_pretrained(model, tokenizer, tmp_path / "hf", format="transformers")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    theirs, their_tok = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    assert type(theirs).__name__ == "GPT2LMHeadModel"
    for prompt in PROMPTS:  # words the word model knows (an unknown one: see below)
        ids = prompt_ids(tokenizer, prompt)
        assert their_tok(prompt)["input_ids"] == ids  # end-of-story first, as ours
        with torch.no_grad():
            diff = (model.eval()(torch.tensor([ids]))[0] - theirs(torch.tensor([ids])).logits).abs().max()
        assert diff <= 1e-4, (prompt, float(diff))
        ours = _ours_greedy(model, tokenizer, prompt, 40)
        generated = theirs.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False)[0, len(ids):].tolist()
        assert generated[: len(ours)] == ours  # ours stops at end-of-story; so does theirs
        assert their_tok.decode(generated[: len(ours)]) == tokenizer.decode(ours)
    text = pipeline("text-generation", model=str(out))(PROMPTS[0], max_new_tokens=30, do_sample=False)
    ours = tokenizer.decode(t for t in _ours_greedy(model, tokenizer, PROMPTS[0], 30) if t != tokenizer.eos_id)
    assert text[0]["generated_text"] == PROMPTS[0] + ours


@pytest.mark.parametrize("kind", ["char", "bpe", "word"])
def test_the_tokenizer_round_trip_equals_ours_on_the_stories(runs, kind, tmp_path):
    _, tokenizer, _ = load(runs[kind], "cpu")
    theirs = hf.to_hf_tokenizer(tokenizer)
    theirs.save_pretrained(tmp_path)
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    for story in make_stories(40, seed=5):
        ids = tokenizer.encode(story)
        assert theirs(story, add_special_tokens=False)["input_ids"] == ids
        assert theirs.decode(ids) == tokenizer.decode(ids) == story
    both = tokenizer.encode(" The end.") + [0] + tokenizer.encode("Once")
    assert theirs.decode(both) == tokenizer.decode(both) == " The end.<|endoftext|>Once"  # end of story kept
    assert theirs.eos_token_id == theirs.bos_token_id == 0 and theirs.convert_ids_to_tokens(0) == "<|endoftext|>"


def test_a_word_models_unknown_word_is_one_unk_in_transformers_where_ours_keeps_its_space(runs):
    """The one difference, as the README says: WordLevel cannot fall back to the space alone."""
    _, tokenizer, _ = load(runs["word"], "cpu")
    theirs = hf.to_hf_tokenizer(tokenizer)
    assert tokenizer.encode("Tom zebra") == [tokenizer.stoi["Tom"], tokenizer.stoi[" "], 1]
    assert theirs("Tom zebra", add_special_tokens=False)["input_ids"] == [tokenizer.stoi["Tom"], 1]


@pytest.mark.parametrize("options", LADDER)
def test_every_ladder_option_exports_as_our_registered_class_with_equal_logits(options, tmp_path):
    tokenizer = CharTokenizer.from_text(" ".join(make_stories(20)))
    torch.manual_seed(0)
    model = shaken(MiniGPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=40, n_embd=32, num_heads=4,
                                       n_layers=2, dropout=0.0, **options))).eval()
    out = save_pretrained(model, tokenizer, tmp_path / "hf", format="transformers")
    expected = "gpt2" if hf.gpt2_compatible(model.config) else "minigpt"
    assert json.loads((out / "config.json").read_text())["model_type"] == expected
    theirs = AutoModelForCausalLM.from_pretrained(out)
    for prompt in PROMPTS:
        ids = torch.tensor([prompt_ids(tokenizer, prompt)[-40:]])
        with torch.no_grad():
            assert (model(ids)[0] - theirs(ids).logits).abs().max() <= 1e-4


def test_our_class_generates_and_pipelines_like_ours(tiny_run, tmp_path):
    """tiny_run is today's default recipe (rotary positions, GELU): our MiniGPT class."""
    model, tokenizer, _ = load(tiny_run, "cpu")
    out = export(tiny_run, tmp_path / "hf", format="transformers")
    assert json.loads((out / "config.json").read_text())["model_type"] == "minigpt"
    theirs = AutoModelForCausalLM.from_pretrained(out)
    assert type(theirs) is hf.MiniGPTForCausalLM
    ids = prompt_ids(tokenizer, "Once upon a")  # 12 tokens + 20 new: within its window of 32
    ours = _ours_greedy(model, tokenizer, "Once upon a", 20)
    generated = theirs.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)[0, len(ids):].tolist()
    assert generated[: len(ours)] == ours
    story = pipeline("text-generation", model=str(out))("Once upon a", max_new_tokens=20, do_sample=False)
    assert story[0]["generated_text"] == "Once upon a" + tokenizer.decode(t for t in ours if t)
    # past the window of 32 it reads what our engine reads (the window slides by a quarter)
    long = prompt_ids(tokenizer, "Once upon a time, Tom had a")
    slid = _ours_greedy(model, tokenizer, "Once upon a time, Tom had a", 60)
    assert len(long) + len(slid) > 32 + 8  # the window slid at least once
    assert theirs.generate(torch.tensor([long]), max_new_tokens=60, do_sample=False)[0, len(long):].tolist()[
        : len(slid)] == slid
    half = AutoModelForCausalLM.from_pretrained(export(tiny_run, tmp_path / "half", dtype="fp16", format="transformers"))
    assert half.model.token_embedding.weight.dtype == torch.float16  # kept as saved
    with pytest.raises(ValueError, match="padding"):
        theirs(torch.tensor([ids, ids]), attention_mask=torch.tensor([[0] + [1] * (len(ids) - 1), [1] * len(ids)]))


def test_a_gpt2_export_loads_in_a_process_that_never_imports_minigpt(runs, tmp_path):
    model, tokenizer, _ = load(runs["char"], "cpu")
    out = save_pretrained(model, tokenizer, tmp_path / "hf", format="transformers")
    ids = prompt_ids(tokenizer, PROMPTS[1])
    with torch.no_grad():
        ours = model.eval()(torch.tensor([ids]))[0][0, -1].tolist()
    script = ("import json, sys, torch\n"
              "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
              f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r})\n"
              f"ids = t({PROMPTS[1]!r})['input_ids']\n"
              "print(json.dumps({'ids': ids, 'last': m(torch.tensor([ids])).logits[0, -1].tolist(),\n"
              "                  'minigpt': 'minigpt' in sys.modules}))\n")
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert answer.returncode == 0, answer.stderr[-2000:]
    seen = json.loads(answer.stdout.strip().splitlines()[-1])
    assert seen["ids"] == ids and not seen["minigpt"]
    assert max(abs(a - b) for a, b in zip(seen["last"], ours)) <= 1e-4


def test_export_format_transformers_from_the_command_line(runs, tmp_path, capsys):
    out = tmp_path / "gpt2"
    assert main(["export", "--checkpoint", str(runs["char"]), "--out", str(out), "--format", "transformers",
                 "--dtype", "fp16"]) == 0
    said = capsys.readouterr().out
    assert "a transformers GPT-2" in said and "pipeline('text-generation'" in said
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "generation_config.json",
                                               "tokenizer.json", "tokenizer_config.json"}
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.float16
    assert main(["generate", "--checkpoint", str(out), "Once"]) == 2  # not our layout: said so
    assert "is a transformers model (model_type 'gpt2'" in capsys.readouterr().err
    again = main(["export", "--checkpoint", str(runs["char"]), "--out", str(out), "--format", "transformers"])
    assert again == 2 and "already holds files" in capsys.readouterr().err  # never over files unasked
    assert main(["export", "--checkpoint", str(runs["char"]), "--out", str(out), "--format", "transformers",
                 "--force"]) == 0
    assert AutoModelForCausalLM.from_pretrained(out).dtype == torch.float32


def test_without_transformers_the_export_is_one_line(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    monkeypatch.delitem(sys.modules, "minigpt.hf")
    monkeypatch.delattr(sys.modules["minigpt"], "hf")
    with pytest.raises(UserError, match="pip install transformers"):
        export(runs["char"], tmp_path / "x", format="transformers")
    assert main(["export", "--checkpoint", str(runs["char"]), "--out", str(tmp_path / "y"),
                 "--format", "transformers"]) == 2
    err = capsys.readouterr().err
    assert "pip install transformers" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_from_minigpt_train_to_a_transformers_pipeline_in_two_commands(story_file, tmp_path, capsys):
    """README: `minigpt train --preset classic ...`, `minigpt export --format transformers ...`, then
    transformers' pipeline reads the directory."""
    run, out = tmp_path / "run", tmp_path / "hf"
    assert main(["train", "--preset", "classic", "--data", story_file, "--max-steps", "60", "--n-layers", "1",
                 "--n-embd", "32", "--num-heads", "2", "--block-size", "48", "--threads", "1",
                 "--out", str(run)]) == 0
    assert main(["export", "--checkpoint", str(run), "--format", "transformers", "--out", str(out)]) == 0
    assert "a transformers GPT-2" in capsys.readouterr().out
    story = pipeline("text-generation", model=str(out))("Once upon a time", max_new_tokens=20, do_sample=False)
    model, tokenizer, _ = load(run, "cpu")
    ours = tokenizer.decode(t for t in _ours_greedy(model, tokenizer, "Once upon a time", 20) if t)
    assert story[0]["generated_text"] == "Once upon a time" + ours
