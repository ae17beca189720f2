"""The layers hold: the import contracts pass, no module imports another package's private
names, and docs/ARCHITECTURE.md draws the import graph as it is.

The contracts live in pyproject.toml ([tool.importlinter]) and run through import-linter, which
sees every import, function-level ones included.
"""

import ast
import pathlib
import re
import subprocess
import sys

import grimp

import samplestore as ss

SRC = pathlib.Path(ss.__file__).parent
ROOT = SRC.parents[1]
# The rows of docs/ARCHITECTURE.md's "imports from" table: `| `layer` | a, b, c |`.
ROW = re.compile(r"^\| `(\w+)` \| ([\w, —-]*) \|$")


def _top_level() -> list[str]:
    return sorted(p.stem if p.is_file() else p.name for p in SRC.iterdir()
                  if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
                  or (p.is_dir() and (p / "__init__.py").exists()))


def test_import_contracts_hold():
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert re.search(r"Contracts: \d+ kept, 0 broken", r.stdout), r.stdout[-2000:]


def test_no_module_imports_a_private_name_of_another_package():
    found = []
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        package = ".".join(("samplestore",) + parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if module.split(".")[0] != "samplestore":
                continue
            theirs = module.split(".")[1] if module.count(".") else ""
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and theirs != parts[0]:
                    found.append(f"{'/'.join(parts)}.py:{node.lineno} imports {alias.name} from {module}")
    assert not found, found


def test_architecture_doc_draws_the_import_graph_as_it_is():
    graph = grimp.build_graph("samplestore")
    layers = _top_level()
    actual = {a: sorted(b for b in layers if b != a and graph.direct_import_exists(
        importer=f"samplestore.{a}", imported=f"samplestore.{b}", as_packages=True)) for a in layers}
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    drawn = {}
    for line in doc.splitlines():
        m = ROW.match(line)
        if m:
            drawn[m.group(1)] = sorted(x.strip() for x in m.group(2).split(",") if x.strip() not in ("", "—"))
    assert drawn == actual, "docs/ARCHITECTURE.md's layer table should read:\n" + "\n".join(
        f"| `{a}` | {', '.join(bs) or '—'} |" for a, bs in actual.items())
