"""The seed's generation entry point, kept for its readers.

    from generate import generate, model, encoder, decoder
    print(generate(model, "Once upon a time", max_new_tokens=200))

Importing this module loads the most recently trained checkpoint under ./runs, or the story model
bundled with the package when there is none (never an untrained model): `encoder` turns text into
ids, `decoder` turns ids back into text. As a script,
`python generate.py "Once upon a time"` is `minigpt generate` with the same options.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from minigpt.api import generate as _generate  # noqa: E402
from minigpt.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["generate", *sys.argv[1:]]))

from minigpt.pretrained import load, resolve  # noqa: E402

checkpoint = resolve()  # the newest run under ./runs, or the bundled model
model, tokenizer, config = load(checkpoint, "cpu")
encoder = tokenizer.encode
decoder = tokenizer.decode


def generate(model=model, prompt: str = "", max_new_tokens: int = 200, **options) -> str:
    """The prompt followed by up to max_new_tokens generated characters."""
    return _generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, **options)
