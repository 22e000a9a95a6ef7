"""The three tokenizers: exact round trips, the end-of-story token, save/load, per-character
evaluation, and a tiny train + generate with each."""

import json
import math
import string

import pytest
from conftest import make_stories, write_txt
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import ModelConfig, TrainConfig, UserError, evaluate, load, train
from minigpt.config import SampleConfig
from minigpt.data import clean_text, prepare_data
from minigpt.evaluate import evaluate_ids
from minigpt.generate import generate_ids, held_back_space, make_generator, prompt_ids, stream
from minigpt.tokenizer import (
    EOS_TEXT,
    UNK_TEXT,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)

CORPUS = [clean_text(s) for s in make_stories(200, seed=3)] + [
    "One day, a little dog named Spot found a red ball in the park.",
    "\"Can I play?\" asked Sam. His mom smiled and said, \"Yes, you can!\"\nThey played all day.",
    "It was 3 o'clock; the sun was hot - very hot... Everyone was happy & tired.",
]
PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " \n"


@pytest.fixture(scope="module")
def tokenizers():
    text = "".join(CORPUS)
    return {"char": CharTokenizer.from_text(text),
            "bpe": BPETokenizer.train(CORPUS, 400),
            "word": WordTokenizer.train(CORPUS * 2, 500)}  # every token seen at least twice


def _story_text():
    """Cleaned text shaped like a story: words, punctuation, single spaces, newlines."""
    return st.text(alphabet=PRINTABLE, min_size=1, max_size=200).map(clean_text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=200))
def test_bpe_round_trips_any_text_exactly(tokenizers, text):
    tok = tokenizers["bpe"]
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=_story_text())
def test_char_round_trips_text_over_its_vocabulary(tokenizers, text):
    tok = tokenizers["char"]
    text = "".join(c for c in text if c in tok.stoi)
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)) | st.text("ab\n .!\""))
def test_char_round_trips_and_ordinary_text_never_yields_end_of_story(text):
    tok = CharTokenizer.from_text(text + "x")
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.eos_id not in ids  # ordinary text never yields the end-of-story token


def test_char_names_unknown_characters_and_saves(tmp_path):
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UserError, match="'z', 'q'"):
        tok.encode("azq")
    tok.save(tmp_path / "t.json")
    again = load_tokenizer(tmp_path / "t.json")
    assert again.stoi == tok.stoi and again.decode([0]) == EOS_TEXT


LINES = sorted({line for story in CORPUS for line in story.split("\n")})


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.sampled_from(LINES), min_size=1, max_size=8))
def test_word_round_trips_story_text_exactly(tokenizers, lines):
    tok = tokenizers["word"]
    text = "\n".join(lines)  # paragraphs of training-like text, in any order
    assert tok.vocab_size < 500 and not tok.unknown_words(text)  # no cut-off reached here
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(text=_story_text())
def test_word_keeps_spacing_and_marks_unknown_words(tokenizers, text):
    tok = tokenizers["word"]
    decoded = tok.decode(tok.encode(text))
    # Every known token comes back; each unknown one becomes <unk> with its space kept.
    unknown = tok.unknown_words(text)
    if not unknown:
        assert decoded == text
    else:
        assert UNK_TEXT in decoded
        assert decoded.count(" ") >= text.count(" ") and decoded.count("\n") == text.count("\n")


def test_word_unknown_words_are_the_ones_that_encode_to_unk(tokenizers):
    tok = tokenizers["word"]
    # "AI" is unknown even though "I" is known: only a leading space may be split off.
    assert "I" in tok.stoi and tok.unknown_words("AI") == ["AI"]
    assert tok.encode("AI") == [tok.unk_id] and tok.unknown_words(" I") == []


def test_word_unknown_words_and_cutoff():
    tok = WordTokenizer.train(["the cat sat. the cat ran. a dog", "the cat ran."], vocab_size=100)
    assert " cat" in tok.stoi and " dog" not in tok.stoi  # seen once: below the cut-off
    ids = tok.encode("the cat saw a zebra.")
    assert tok.decode(ids) == "the cat <unk> <unk> <unk>."  # " a" was seen once too
    assert tok.unknown_words("the cat saw a zebra.") == ["saw", "a", "zebra"]
    small = WordTokenizer.train(["a b c d e f g"] * 5, vocab_size=6)  # 4 reserved + 2 words
    assert small.vocab_size == 6


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=PRINTABLE + "<|>", max_size=100))
def test_the_end_of_story_token_never_comes_from_ordinary_text(tokenizers, text):
    for kind, tok in tokenizers.items():
        if kind == "char":
            text = "".join(c for c in text if c in tok.stoi)
        for candidate in (text, text + EOS_TEXT, EOS_TEXT + text):
            if kind == "char":
                candidate = "".join(c for c in candidate if c in tok.stoi)
            assert tok.eos_id not in tok.encode(candidate), kind


def test_end_of_story_decodes_to_the_marker(tokenizers):
    for kind, tok in tokenizers.items():
        ids = tok.encode("Once upon a time, Tom had a cake.") + [tok.eos_id] + tok.encode("Tom")
        assert tok.decode(ids) == f"Once upon a time, Tom had a cake.{EOS_TEXT}Tom", kind
        assert tok.piece(tok.eos_id) == EOS_TEXT


def test_save_and_load_each_tokenizer(tokenizers, tmp_path):
    text = "Once upon a time, Lily had a kite. \"I like my kite!\" said Lily. The yak ran."
    for kind, tok in tokenizers.items():
        path = tmp_path / f"{kind}.json"
        tok.save(path)
        again = load_tokenizer(path)
        assert again.kind == kind and again.vocab_size == tok.vocab_size
        assert again.encode(text) == tok.encode(text)
        assert again.decode(tok.encode(text)) == tok.decode(tok.encode(text))
        assert json.loads(path.read_text())["eos"] == EOS_TEXT


def test_bad_tokenizer_files_and_sizes(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps({"kind": "sentencepiece"}))
    with pytest.raises(UserError, match="unknown kind"):
        load_tokenizer(path)
    with pytest.raises(UserError, match="between 257"):
        BPETokenizer.train(CORPUS, 100)
    with pytest.raises(UserError, match="tokenizer must be"):
        train_tokenizer("char", CORPUS)
    with pytest.raises(UserError, match="--vocab-size is for"):
        TrainConfig(tokenizer="char", tokenizer_vocab_size=500).validate()


def test_prepare_data_records_characters_per_token(tmp_path):
    data = write_txt(tmp_path / "s.txt", CORPUS)
    chars = sum(len(s) + 1 for s in CORPUS)  # each story plus its end-of-story marker
    for kind in ("char", "bpe", "word"):
        splits = prepare_data(TrainConfig(data=[data], tokenizer=kind,
                                          tokenizer_vocab_size=None if kind == "char" else 300),
                              tmp_path / kind, log=lambda *a: None)
        assert splits.train_chars + splits.val_chars == chars
        assert (splits.train == splits.tokenizer.eos_id).sum() + (splits.val == 0).sum() == len(CORPUS)
        ratio = splits.chars_per_token("train")
        assert (ratio == 1.0) if kind == "char" else (ratio > 1.5), kind
        # The ids decode back to the training stories, in order (every 10th story is held out;
        # the word tokenizer gives each story back as its own decode(encode()) round trip).
        tok = splits.tokenizer
        held = {i for i in range(len(CORPUS)) if int((i + 1) * 0.1) > int(i * 0.1)}
        expected = [tok.decode(tok.encode(s)) for i, s in enumerate(CORPUS) if i not in held]
        assert tok.decode(splits.train.tolist()).split(EOS_TEXT)[1:] == expected, kind
        if kind != "word":
            assert expected == [s for i, s in enumerate(CORPUS) if i not in held]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny model trained with each tokenizer (40 steps: enough to test the plumbing)."""
    root = tmp_path_factory.mktemp("tok-runs")
    data = write_txt(root / "stories.txt", make_stories(300))
    out = {}
    for kind, vocab in (("char", None), ("bpe", 300), ("word", 100)):
        out[kind] = train(ModelConfig(block_size=32, n_embd=32, num_heads=4, n_layers=1),
                          TrainConfig(data=[data], tokenizer=kind, tokenizer_vocab_size=vocab,
                                      batch_size=8, max_steps=40, eval_interval=40, eval_batches=2,
                                      sample_chars=30, threads=1, warmup_steps=5, plot_loss=False),
                          root / kind, log=lambda *a: None)
    return out


def test_each_tokenizer_trains_and_generates(runs):
    for kind, run in runs.items():
        model, tok, config = load(run, "cpu")
        assert tok.kind == kind and config["tokenizer"] == kind
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert metrics[-1]["val_bpc"] < 5.0, kind  # learned something in 40 steps
        cfg = SampleConfig(max_new_tokens=None, max_new_chars=57, seed=1, stop_at_eos=False)
        text = "".join(stream(model, tok, "Once upon a time", cfg))
        assert len(text) == 57, kind  # exactly the characters asked for, whatever the tokens
        tokens = SampleConfig(max_new_tokens=5, seed=1, stop_at_eos=False)
        assert len(list(stream(model, tok, "Once", tokens))) == 5  # --max-new-tokens counts tokens
        assert "".join(stream(model, tok, "Once upon a time", cfg)) == text  # seeded: repeatable


def test_a_trailing_prompt_space_is_held_back_for_subword_and_word_models(runs):
    prompt = "Once upon a time "
    for kind, run in runs.items():
        model, tok, _ = load(run, "cpu")
        held, allowed = held_back_space(tok, prompt)
        assert held_back_space(tok, prompt.rstrip()) == ("", None)
        cfg = SampleConfig(max_new_tokens=6, seed=1, stop_at_eos=False)
        story = list(stream(model, tok, prompt, cfg))
        if kind == "char":  # one token per character: the space is fed like any other
            assert (held, allowed) == ("", None)
            fed = prompt_ids(tok, prompt)
        else:
            assert held == " "
            assert allowed.tolist() == [tok.piece(i).startswith(" ") for i in range(tok.vocab_size)]
            fed = prompt_ids(tok, prompt.rstrip())  # the model sees the prompt without it
        expected = [tok.piece(t) for t in generate_ids(model, fed, cfg, tok.eos_id,
                                                       make_generator(1), allowed)]
        if held:  # the first token starts with the space, which the prompt already shows
            assert expected[0].startswith(" ")
            expected[0] = expected[0][1:]
        assert story == expected, kind


def test_bits_per_char_is_total_nats_over_characters(runs, tmp_path):
    held = write_txt(tmp_path / "held.txt", ["Once upon a time, Mia had a cake.", "Tom had a boat."])
    chars = len("Once upon a time, Mia had a cake.") + 1 + len("Tom had a boat.")
    for kind, run in runs.items():
        model, tok, _ = load(run, "cpu")
        result = evaluate(model, tok, held)
        ids = ([0] + tok.encode("Once upon a time, Mia had a cake.") + [0] + tok.encode("Tom had a boat."))
        direct = evaluate_ids(model, ids)
        assert result["chars"] == chars and result["tokens"] == len(ids) - 1
        assert result["bits_per_char"] == pytest.approx(direct["total_nats"] / (math.log(2) * chars))
        assert result["nats_per_token"] == pytest.approx(direct["nats_per_char"])
        if kind == "char":  # one token per character: both paths give the same number
            assert result["bits_per_char"] == pytest.approx(direct["bits_per_char"])
        else:
            assert result["tokens"] < chars
