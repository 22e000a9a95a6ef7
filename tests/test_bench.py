"""Every benchmark script still starts: it imports (its helpers and the package API it uses still
exist) and its --help describes its options. The measurements themselves are for bench/, not
for tests."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                 for p in (ROOT / "bench").rglob("*.py")
                 if p.name != "__init__.py" and "__main__" in p.read_text(encoding="utf-8"))


def test_the_bench_package_has_its_groups():
    groups = {name.split(".")[1] for name in SCRIPTS}
    assert {"speed", "quality", "robustness"} <= groups


@pytest.mark.parametrize("module", SCRIPTS)
def test_each_bench_script_starts_and_explains_its_options(module, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__", alter_sys=False)
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out


def test_the_ladder_file_has_every_rung_and_minigpt_accepts_every_row(monkeypatch, capsys):
    """bench/quality/ladder.toml (issue 20): baseline, wsd and one row per minigpt.ladder.RUNGS
    idea, each accepted by `minigpt train`'s own parser and config checks (--dry-run trains
    nothing and reads no data)."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.quality.recipe_sweep import main, read_candidates
    from minigpt.ladder import RUNGS

    path = str(ROOT / "bench" / "quality" / "ladder.toml")
    rows = read_candidates(path)
    assert set(rows) == {"baseline", "wsd", *RUNGS} and rows["baseline"] == "--preset classic"
    # every row is the seed's architecture plus one idea, whatever today's defaults are
    assert all(options.startswith("--preset classic") for options in rows.values())
    combined = str(ROOT / "bench" / "quality" / "ladder_combined.toml")  # the second step
    both = {**rows, **read_candidates(combined)}
    assert all(o.startswith(("--preset classic", "--preset modern")) for o in both.values())
    monkeypatch.setattr(sys, "argv", ["recipe_sweep", "--candidates", path, "--candidates", combined,
                                      "--skip-builtin", "--dry-run"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0, out
    assert f"{len(both)} of {len(both)} candidate(s) would run" in out and "REFUSED" not in out
