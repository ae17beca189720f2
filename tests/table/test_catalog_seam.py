"""The catalog seam holds: only catalog/ knows the backend, table/ does not reach up.

Read from the source (every import, function-level ones included), so an edge hidden inside
a function fails here as it would in the import contracts.
"""

import ast
import pathlib

import pytest

import samplestore as ss
from samplestore.table import maintenance

SRC = pathlib.Path(ss.__file__).parent


def _imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a module of the package."""
    package = ".".join(("samplestore",) + path.relative_to(SRC).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            out += [(node.lineno, f"{mod}.{a.name}" if node.module is None else mod) for a in node.names]
    return out


def _modules(*folders: str) -> list[pathlib.Path]:
    return sorted(p for f in folders for p in (SRC / f).rglob("*.py"))


def test_only_the_catalog_package_knows_its_backend():
    found = [f"{p.relative_to(SRC)}:{line} imports {mod}" for p in SRC.rglob("*.py")
             if p.relative_to(SRC).parts[0] != "catalog" for line, mod in _imports(p)
             if mod.split(".")[0] == "sqlite3" or mod.startswith("samplestore.catalog.sqlite")]
    assert not found, found


@pytest.mark.parametrize("layer", ["table", "catalog", "format"])
def test_lower_layers_never_import_higher_ones(layer):
    higher = ("compaction", "torch", "cli", "bench", "demo", "datagen")
    found = [f"{p.relative_to(SRC)}:{line} imports {mod}" for p in _modules(layer) for line, mod in _imports(p)
             if mod.split(".")[:2] in (["samplestore", h] for h in higher)]
    assert not found, found


def test_table_maintenance_is_registered_by_compaction():
    import samplestore.compaction as compaction

    ops = maintenance.maintenance()
    assert ops.compact is compaction.compact and ops.gc is compaction.gc_table
    assert "samplestore.compaction.compact" in ss.Table.compact.__doc__  # help(table.compact) says where


def test_without_compaction_registered_the_table_says_what_to_import(tmp_path, monkeypatch):
    t = ss.open_store(tmp_path / "s", create=True).create_table("t", ss.Schema([ss.Label("y")]))
    monkeypatch.setattr(maintenance, "_registered", None)
    with pytest.raises(ss.MissingDependency, match=r"Table.compact\(\) needs samplestore.compaction.*import samplestore"):
        t.compact()
    with pytest.raises(TypeError, match="Maintenance"):
        maintenance.register_maintenance(object())
