"""Ray is an extra: without it samplestore imports, writes and compacts in process, and the
Ray parts say which extra to install (the child process hides ray with an import hook)."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, importlib.abc, json

    class NoRay(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "ray":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoRay())
    import samplestore as ss
    from samplestore import datagen
    from samplestore.cli.main import main

    t = ss.open_store(sys.argv[1], create=True).create_table("t", datagen.criteo_schema(num_sparse=2))
    for k in range(2):
        t.append(datagen.criteo_like(100, seed=k, num_sparse=2))
    t.compact()
    messages = []
    for attempt in (lambda: t.compact(executor="ray"), lambda: __import__("samplestore.ray")):
        try:
            attempt()
            messages.append(None)
        except ss.MissingDependency as exc:
            messages.append(str(exc))
    code = main(["compact", sys.argv[1], "t", "--executor", "ray"])
    print(json.dumps({"files": len(t.files()), "messages": messages, "code": code,
                      "ray_loaded": any(m.split(".")[0] == "ray" for m in sys.modules)}))
""")


def test_store_works_without_ray_and_the_ray_executor_names_the_extra(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "store")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["files"] == 1 and not out["ray_loaded"]
    assert all("pip install 'samplestore[ray]'" in m for m in out["messages"]), out["messages"]
    assert out["code"] == 2 and "samplestore[ray]" in r.stderr  # an error message, no traceback
    assert "Traceback" not in r.stderr
