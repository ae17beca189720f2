"""The files a new user runs first: the Makefile and the README's set-up steps."""

import glob
import os
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git_tracked(paths):
    r = subprocess.run(["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    return r.stdout.split()


def test_make_clean_removes_no_tracked_file():
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("needs make and git")
    r = subprocess.run(["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    removed = []
    for line in r.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["rm"]:
            for w in words[1:]:
                if not w.startswith("-"):
                    removed.extend(glob.glob(os.path.join(ROOT, w)) or [os.path.join(ROOT, w)])
    assert removed, r.stdout  # the recipe still removes something: the check below is not vacuous
    assert _git_tracked([os.path.relpath(p, ROOT) for p in removed]) == []


def test_readme_says_how_to_run_the_cli_after_make_demo():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert "make demo" in setup
    after = setup.split("make demo", 1)[1]
    assert ".venv/bin/samplestore" in after and "source .venv/bin/activate" in after
    # The command shown works as written in a fresh shell: it names the venv's script.
    assert re.search(r"\.venv/bin/samplestore (info|verify) demo-store", after)


def test_demo_suggests_a_command_that_runs_in_a_fresh_shell(tmp_path, monkeypatch):
    from samplestore.demo import cli_command

    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    script = bindir / "samplestore"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    python = str(bindir / "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv is not activated
    assert cli_command(python) == os.path.join("venv", "bin", "samplestore")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")  # activated: the plain name runs it
    assert cli_command(python) == "samplestore"
    script.unlink()  # no script beside the interpreter (run from a source tree)
    assert cli_command(python) == f"{python} -m samplestore"
