"""The docs stay true to the code: docs/architecture.md's module map is the package's imports."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "minigpt"


def imports_between_modules() -> dict[str, set[str]]:
    """For each top-level module (or sub-package) of minigpt: the others it imports from."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts == ["__init__"] or parts == ["__main__"]:
            continue
        me = parts[0]
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.level and node.module):
                continue
            base = package[: len(package) - (node.level - 1)]
            target = (base + node.module.split("."))[0]
            if target != me:
                graph.setdefault(me, set()).add(target)
        graph.setdefault(me, set())
    return graph


def documented_map() -> list[tuple[str, set[str], str]]:
    """(module, what the map says it imports, its note) for each line of the map, in order."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- module map -->", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.strip().splitlines():
        name, _, rest = line.partition("->")
        uses, _, note = rest.partition("#")
        rows.append((name.strip(), set(re.findall(r"[a-z_]+", uses)), note))
    return rows


def test_the_module_map_in_architecture_md_is_the_real_imports():
    real, rows = imports_between_modules(), documented_map()
    documented = {name: uses for name, uses, _ in rows}
    assert set(documented) == set(real), "modules missing from or extra in the map"
    for module, uses in real.items():
        assert documented[module] == uses, f"{module}: the map says {sorted(documented[module])}"


def test_each_module_imports_only_those_above_it_unless_its_note_says_so():
    seen: set[str] = set()
    for name, uses, note in documented_map():
        later = uses - seen
        assert all(module in note for module in later), f"{name} imports {sorted(later)} from below"
        seen.add(name)
