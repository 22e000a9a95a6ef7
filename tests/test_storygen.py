"""Properties of the story generator (tools/storygen.py) and of the corpus it wrote, which the
package ships (src/minigpt/corpus/stories.txt).

The generator is a build-time tool outside the package, so this file puts the repository root on
sys.path to import `tools.storygen`, as `python -m tools.storygen` from the root would see it.
"""

import random
import re
import sys
from pathlib import Path

import pytest

from minigpt.corpus import BUNDLED_STORIES_PATH, load_bundled_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import storygen  # noqa: E402
from tools.storygen import DEFAULT_N, DEFAULT_SEED, SEPARATOR, generate_stories  # noqa: E402

ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,!?'\":;-")
FEMALE = {"she", "her", "hers", "herself"}
MALE = {"he", "him", "his", "himself"}


@pytest.fixture(scope="module")
def shipped_stories():
    return load_bundled_text().split(SEPARATOR)


@pytest.fixture(scope="module")
def told():
    """Many stories together with their casts, for the pronoun and name checks."""
    rng = random.Random(99)
    return [storygen.tell_story(rng) for _ in range(600)]


def test_same_seed_same_stories_and_different_seed_different_stories():
    assert generate_stories(30, seed=7) == generate_stories(30, seed=7)
    assert generate_stories(30, seed=7) != generate_stories(30, seed=8)
    # n only says how many: a shorter run is a prefix of a longer one
    assert generate_stories(40, seed=7)[:30] == generate_stories(30, seed=7)


def test_shipped_file_is_exactly_what_the_generator_writes(shipped_stories):
    assert BUNDLED_STORIES_PATH.name == "stories.txt"
    assert shipped_stories == generate_stories(DEFAULT_N, DEFAULT_SEED)


def test_command_line_writes_the_same_bytes(tmp_path):
    out = tmp_path / "stories.txt"
    storygen.main(["--out", str(out), "--n", "25", "--seed", "3"])
    assert out.read_bytes() == SEPARATOR.join(generate_stories(25, 3)).encode("ascii")


def test_shipped_corpus_size_and_charset():
    raw = BUNDLED_STORIES_PATH.read_bytes()
    assert 150_000 <= len(raw) <= 400_000
    assert set(raw.decode("ascii")) - set("<|>") <= ALLOWED  # <|> only inside the separator
    assert "<" not in raw.decode().replace(SEPARATOR, "")


def test_stories_are_non_empty_and_mostly_unique(shipped_stories):
    assert len(shipped_stories) == DEFAULT_N
    for story in shipped_stories:
        paragraphs = story.split("\n")
        assert 2 <= len(paragraphs) <= 6
        assert all(p.strip() == p and p for p in paragraphs)
        assert 60 <= len(story.split()) <= 260
        assert set(story) <= ALLOWED
    assert len(set(shipped_stories)) > 0.95 * len(shipped_stories)
    assert sum('"' in s for s in shipped_stories) > 0.8 * len(shipped_stories)  # dialogue in most


def test_no_sentence_is_in_too_many_stories(shipped_stories):
    counts = {}
    for story in shipped_stories:
        for sentence in set(re.split(r'(?<=[.!?])"? +(?=["A-Z])', story.replace("\n", " "))):
            if len(sentence.split()) >= 4:  # short cries like "Oh no!" repeat in any corpus
                counts[sentence] = counts.get(sentence, 0) + 1
    worst = max(counts, key=counts.get)
    assert counts[worst] <= 0.05 * len(shipped_stories), worst


def test_text_looks_like_finished_english(shipped_stories):
    for story in shipped_stories:
        assert "{" not in story and "}" not in story and "|" not in story
        assert "  " not in story
        for p in story.split("\n"):
            assert p[0].isupper() or p[0] == '"', p
            assert p.rstrip('"')[-1] in ".!?", p
            assert p.count('"') % 2 == 0, p  # every quote is closed in its paragraph
        assert not re.search(r"[.!?] +[a-z]", story), story  # sentences start with a capital
        assert not re.search(r"\ba [aeiou]", story), story  # "a apple"
        assert not re.search(r"\ban [^aeiou\s]", story), story  # "an ball"
        assert not re.search(r"\b(\w+) \1\b", story, re.IGNORECASE), story  # "the the"


def test_pronouns_match_the_cast(told):
    checked = {"f": 0, "m": 0}
    for s in told:
        words = set(re.findall(r"[a-z]+", s.text().lower()))
        genders = {gender for _name, gender in s.cast}
        if genders == {"f"}:
            assert not words & MALE, s.text()
            checked["f"] += 1
        if genders == {"m"}:
            assert not words & FEMALE, s.text()
            checked["m"] += 1
    assert min(checked.values()) > 50  # the check really ran on many stories of each kind


def test_hero_is_named_first_and_only_cast_names_appear(told):
    for s in told:
        text = s.text()
        hero = s.cast[0][0]
        assert hero in " ".join(text.split(". ")[:2]), text  # the first two sentences name the hero
        cast_names = {name for name, _gender in s.cast}
        named = set(re.findall(r"\b[A-Z][a-z]+\b", text)) & set(storygen.ALL_NAMES)
        assert named <= cast_names, (named - cast_names, text)


def test_load_bundled_text_reads_the_file():
    assert load_bundled_text() == BUNDLED_STORIES_PATH.read_text(encoding="utf-8")
