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


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _cross_package_private_uses(path: pathlib.Path) -> list[str]:
    """Private names of other samplestore packages this module imports or reads.

    Covers ``from ..pkg.mod import _name``, ``from ..pkg._mod import x``, ``import
    samplestore.pkg._mod`` and ``alias._name`` where ``alias`` was imported from another
    package. (A private attribute of a parameter is beyond a static check.)
    """
    parts = path.relative_to(SRC).with_suffix("").parts
    package = ".".join(("samplestore",) + parts[:-1])
    mine = parts[0]
    found, imported = [], set()

    def other(module: str) -> bool:
        bits = module.split(".")
        return bits[0] == "samplestore" and len(bits) > 1 and bits[1] != mine

    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        where = f"{'/'.join(parts)}.py:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            if not other(module):
                continue
            if any(_private(b) for b in module.split(".")[2:]):
                found.append(f"{where} imports from the private module {module}")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{where} imports {alias.name} from {module}")
                imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if other(alias.name) and any(_private(b) for b in alias.name.split(".")[2:]):
                    found.append(f"{where} imports the private module {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in imported):
            found.append(f"{'/'.join(parts)}.py:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_a_private_name_of_another_package():
    found = [use for path in sorted(SRC.rglob("*.py")) for use in _cross_package_private_uses(path)]
    assert not found, found


def test_the_private_name_check_sees_each_form(tmp_path, monkeypatch):
    """The check above is not vacuous: each form of reach-in is reported."""
    fake = tmp_path / "samplestore"
    (fake / "torch").mkdir(parents=True)
    module = fake / "torch" / "bad.py"
    module.write_text("from ..table.scan import _open\n"
                      "from ..format._codec import f\n"
                      "import samplestore.format._codec\n"
                      "from ..table import scan\n"
                      "x = scan._private_helper\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = _cross_package_private_uses(module)
    assert len(found) == 4, found


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
