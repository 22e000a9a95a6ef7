"""The seed's generation entry point, kept for its readers.

    from generate import generate, model, encoder, decoder
    print(generate(model, "Once upon a time", max_new_tokens=200))

Importing this module loads the most recently trained checkpoint under ./runs (never an untrained
model): `encoder` turns text into ids, `decoder` turns ids back into text. As a script,
`python generate.py "Once upon a time"` is `minigpt generate` with the same options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from minigpt.api import generate as _generate  # noqa: E402
from minigpt.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["generate", *sys.argv[1:]]))

from minigpt.checkpoint import find_latest_run, load_model  # noqa: E402

checkpoint = find_latest_run(Path.cwd() / "runs")
model, tokenizer, config = load_model(checkpoint)
encoder = tokenizer.encode
decoder = tokenizer.decode


def generate(model=model, prompt: str = "", max_new_tokens: int = 200, **options) -> str:
    """The prompt followed by up to max_new_tokens generated characters."""
    return _generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, **options)
