"""The small story corpus that ships inside the package.

When no dataset can be downloaded, minigpt still needs text to learn from. `stories.txt`
holds a few hundred short children's stories written by our own generator (`tools/storygen.py`
in the repository, a build-time tool that is not shipped), separated by lines of `<|endoftext|>`
just like the TinyStories text files, so the same loading code reads both.
"""

from pathlib import Path

BUNDLED_STORIES_PATH = Path(__file__).with_name("stories.txt")


def load_bundled_text() -> str:
    """Return the bundled stories as one string (stories separated by <|endoftext|> lines)."""
    return BUNDLED_STORIES_PATH.read_text(encoding="utf-8")
