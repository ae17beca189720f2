"""Table maintenance points down: compaction registers what Table.compact() runs.

That only catalog/ knows its backend (sqlite3) and that table/ never imports compaction/ are
import contracts (pyproject.toml, run by tests/test_layers.py).
"""

import pytest

import samplestore as ss
from samplestore.table import maintenance


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
