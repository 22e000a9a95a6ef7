"""`minigpt report`: how good is a model? Held-out bits per character, plus measures of the stories
it writes.

On `stories` stories generated from scratch (each starts after an end-of-story token, seed
`seed + i`, temperature 0.8, at most `max_new_chars` characters):

- real_word_share: of all the words written (runs of letters, lower-cased), the share that occur
  in the training text (`words.txt` of a model directory, or the run's own training data): misspelt
  and invented words lower it.
- distinct_2 / distinct_3: distinct word pairs / triples over all pairs / triples, across every
  story (higher: more varied; a model repeating itself or writing the same story scores low).
- repetition_rate: within a story, the share of word 4-grams that already appeared earlier in the
  same story, averaged over stories (0: no phrase of four words repeats; loops push it up).
- ended_share: the share of stories the model ended itself with the end-of-story token, rather than
  running into the length limit.

With held-out data (`--data`), the same story measures are computed on the first `stories` real
stories, as a reference for what TinyStories text itself scores.
"""

from __future__ import annotations

from collections import Counter

import torch

from .config import SampleConfig
from .data import clean_text, iter_stories
from .engine import Engine
from .evaluate import evaluate_data, evaluate_ids, per_char
from .pretrained import load, resolve, training_words
from .tokenizer import WORD


def story_measures(stories: list[str], vocabulary: set[str] | None) -> dict:
    """real_word_share, distinct_2, distinct_3, repetition_rate (see the module docstring)."""
    per_story = [[w.lower() for w in WORD.findall(s)] for s in stories]
    words = [w for story in per_story for w in story]
    result = {"words": len(words), "mean_chars": sum(map(len, stories)) / max(len(stories), 1)}
    result["real_word_share"] = (sum(w in vocabulary for w in words) / len(words)
                                 if vocabulary and words else None)
    for n in (2, 3):
        grams = [tuple(s[i:i + n]) for s in per_story for i in range(len(s) - n + 1)]
        result[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else None
    rates = []
    for s in per_story:
        grams = [tuple(s[i:i + 4]) for i in range(len(s) - 3)]
        if grams:
            seen = Counter(grams)
            rates.append(sum(count - 1 for count in seen.values()) / len(grams))
    result["repetition_rate"] = sum(rates) / len(rates) if rates else None
    return result


def write_stories(model, tokenizer, n: int, max_new_chars: int, seed: int, temperature: float = 0.8
                  ) -> tuple[list[str], list[bool]]:
    """n stories from scratch (story i with seed + i), written together by the engine, and
    whether each ended with the end-of-story token."""
    cfg = SampleConfig(max_new_tokens=None, max_new_chars=max_new_chars, temperature=temperature)
    engine = Engine(model, tokenizer, max_batch=min(n, 32))
    streams = engine.run([engine.stream("", cfg, seed + i) for i in range(n)])
    return [s.text for s in streams], [s.finished == "end of story" for s in streams]


def report(source=None, data: list[str] | None = None, stories: int = 20, max_new_chars: int = 1500,
           seed: int = 0, temperature: float = 0.8, device: str = "cpu") -> dict:
    """The whole report as a dict (see the module docstring)."""
    from .data import load_splits

    path = resolve(source)
    model, tokenizer, _ = load(path, device)
    out = {"model": str(path), "parameters": model.num_parameters(), "tokenizer": tokenizer.kind}
    if data:
        held = evaluate_data(model, tokenizer, data)
        out["held_out"] = {"data": data, **held}
    elif (path / "data" / "val.bin").exists():
        splits = load_splits(path / "data", tokenizer)
        with torch.inference_mode():
            held = per_char(evaluate_ids(model, splits.val), max(splits.val_chars - 1, 1)
                            if splits.val_chars else len(splits.val) - 1)
        out["held_out"] = {"data": "the run's held-out split", **held}
    vocabulary = set(training_words(path, tokenizer)) or None
    texts, ended = write_stories(model, tokenizer, stories, max_new_chars, seed, temperature)
    out["generated"] = dict(story_measures(texts, vocabulary), stories=stories,
                            ended_share=sum(ended) / max(stories, 1), seed=seed,
                            temperature=temperature, max_new_chars=max_new_chars)
    if data:
        real = []
        for spec in data:
            for story in iter_stories(spec):
                real.append(clean_text(story))
                if len(real) == stories:
                    break
        out["real"] = dict(story_measures(real, vocabulary), stories=len(real))
    out["samples"] = texts[:3]
    return out


def format_report(r: dict) -> str:
    def num(x, spec=".3f"):
        return "-" if x is None else format(x, spec)

    lines = [f"model: {r['model']} ({r['parameters']:,} parameters, {r['tokenizer']} tokenizer)"]
    if "held_out" in r:
        h = r["held_out"]
        lines.append(f"held-out: {h['bits_per_char']:.4f} bits/char ({h['chars']:,} characters of "
                     f"{h['data'] if isinstance(h['data'], str) else ', '.join(h['data'])})")
    g = r["generated"]
    columns = ["real_word_share", "distinct_2", "distinct_3", "repetition_rate"]
    lines.append(f"{g['stories']} generated stories (seed {g['seed']}, temperature {g['temperature']}, "
                 f"at most {g['max_new_chars']} characters): {g['ended_share']:.0%} ended by the model")
    lines.append("| text | " + " | ".join(columns) + " | mean chars |")
    lines.append("|---|" + "---:|" * (len(columns) + 1))
    for name in ("generated", "real"):
        if name in r:
            lines.append(f"| {name} | " + " | ".join(num(r[name][c]) for c in columns)
                         + f" | {r[name]['mean_chars']:.0f} |")
    return "\n".join(lines)
