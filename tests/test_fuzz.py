"""Property-based fuzzing: whatever bytes or values arrive, the tokenizer, the data loaders and the
config parser either succeed or raise UserError: never another exception, never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from minigpt import CharTokenizer, ModelConfig, SampleConfig, TrainConfig, UserError
from minigpt.config import from_dict, load_toml
from minigpt.data import clean_text, iter_stories, normalise_characters
from minigpt.tokenizer import EOS_TEXT

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(vocab=st.text(min_size=1), text=st.text())
def test_tokenizer_encodes_or_names_the_missing_characters(vocab, text):
    tok = CharTokenizer.from_text(vocab)
    try:
        ids = tok.encode(text)
    except UserError as exc:
        assert any(repr(c) in str(exc) for c in tok.unknown(text))
        return
    assert tok.decode(ids) == text and all(0 < i < tok.vocab_size for i in ids)


@FAST
@given(st.text())
def test_cleaned_prompt_is_always_encodable_by_a_full_ascii_vocabulary(text):
    tok = CharTokenizer(chr(c) for c in list(range(32, 127)) + [10])
    assert tok.decode(tok.encode(normalise_characters(text))) == normalise_characters(text)
    assert EOS_TEXT not in tok.decode(tok.encode(clean_text(text))) or EOS_TEXT in text


def _read(suffix: str, content: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(content)
        return list(iter_stories(str(path)))


@FAST
@given(suffix=st.sampled_from([".txt", ".jsonl", ".json", ".parquet"]), content=st.binary(max_size=300))
def test_data_loaders_survive_arbitrary_bytes(suffix, content):
    try:
        stories = _read(suffix, content)
    except UserError:
        return
    assert all(isinstance(s, str) for s in stories)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["text", "story", "x"]), inner, max_size=3),
                           max_leaves=8)


@FAST
@given(records=st.lists(json_values, max_size=6))
def test_json_loaders_survive_arbitrary_structures(records):
    for suffix, content in ((".jsonl", "\n".join(json.dumps(r) for r in records)),
                            (".json", json.dumps(records))):
        try:
            stories = _read(suffix, content.encode())
        except UserError:
            continue
        assert all(isinstance(s, str) for s in stories)


@FAST
@given(st.text(max_size=200))
def test_config_parser_survives_arbitrary_text(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(text, encoding="utf-8")
        try:
            sections = load_toml(path)
        except UserError:
            return
        for cls, name in ((ModelConfig, "model"), (TrainConfig, "train"), (SampleConfig, "sample")):
            try:
                from_dict(cls, sections[name], name).validate()
            except UserError:
                pass


toml_scalars = st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=True) \
    | st.text(max_size=10) | st.lists(st.text(max_size=5), max_size=3)


@FAST
@given(cls=st.sampled_from([ModelConfig, TrainConfig, SampleConfig]),
       values=st.dictionaries(st.sampled_from(["block_size", "n_embd", "num_heads", "dropout",
                                               "learning_rate", "max_time", "data", "top_p",
                                               "temperature", "epochs", "batch_size", "top_k",
                                               "device", "attention", "unknown_key"]),
                              toml_scalars, max_size=4))
def test_config_values_validate_or_raise_user_error(cls, values):
    try:
        from_dict(cls, values, "fuzz").validate()
    except UserError as exc:
        assert "\n" not in str(exc)
