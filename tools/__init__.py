"""Build-time tools: code that makes files the package ships, but is not part of it.

Run them from the repository root as modules, e.g. `python -m tools.storygen --out
src/minigpt/corpus/stories.txt` (the bundled story corpus). Nothing under `src/minigpt` imports
from here, and the wheel does not contain it.
"""
