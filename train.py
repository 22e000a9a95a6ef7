"""The seed's training entry point, kept for its readers: `python train.py [options]`.

It trains with the seed's defaults (see minigpt/config.py) and accepts every `minigpt train`
option, e.g. `python train.py --max-time 5m --data ../shared/data/tinystories/some.txt`.
Works from a plain checkout: the package is imported from src/ when it is not installed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from minigpt.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
