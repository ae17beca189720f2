"""samplestore is a library: without torch it writes, scans, compacts and exports, and the
training path says which extra to install.

The child process hides torch (and what needs it) with an import hook, as if
``pip install samplestore`` had been run without the ``[torch]`` extra.
"""

import json
import subprocess
import sys
import textwrap

import pytest

HIDE_TORCH = textwrap.dedent("""
    import sys, importlib.abc

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchrec", "torchdata"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
""")

SCRIPT = HIDE_TORCH + textwrap.dedent("""
    import json, os, sys
    import pyarrow.compute as pc
    import samplestore as ss
    from samplestore import datagen
    from samplestore.cli.main import main

    root = sys.argv[1]
    t = ss.open_store(root, create=True).create_table("s", datagen.sessions_schema(), partition_by=["ds"])
    for k in range(3):
        t.append(datagen.sessions_like(500, seed=k))
    t.delete(pc.field("user_id") < 10)
    t.compact()
    rows = t.scan(columns=["user_id"]).count()
    code = main(["export", root, "s", os.path.join(root, "out.parquet")])
    try:
        import samplestore.torch  # noqa: F401
        message = None
    except ss.MissingDependency as exc:
        message = str(exc)
    print(json.dumps({"rows": rows, "export": code, "message": message,
                      "torch_loaded": any(m.split(".")[0] == "torch" for m in sys.modules)}))
""")


@pytest.mark.slow
def test_store_works_without_torch_and_training_names_the_extra(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["export"] == 0 and (tmp_path / "store" / "out.parquet").stat().st_size > 0
    assert 0 < out["rows"] < 1500
    assert not out["torch_loaded"]
    assert "pip install 'samplestore[torch]'" in out["message"]


def test_cli_demo_without_torch_names_the_extra(tmp_path):
    script = HIDE_TORCH + "from samplestore.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", script, "demo", "--root", str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "samplestore demo (it trains a model) needs torch" in r.stderr
    assert "pip install 'samplestore[torch]'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_torch_is_an_extra_not_a_dependency():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert not any(d.split(">")[0].split("=")[0].strip() == "torch" for d in project["dependencies"])
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["torch"])
