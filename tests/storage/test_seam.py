"""No module outside ``samplestore/storage/`` touches files itself: every byte of a store goes
through the storage seam (issue 11's acceptance grep, enforced).

The check is the equivalent of::

    grep -rnE "(^|[^.[:alnum:]_])open\\(|os\\.(open|replace|unlink|walk|scandir|...)\\(|glob|..." \\
        src/samplestore --include='*.py' | grep -v '^src/samplestore/storage/'

minus the allow-list below, each entry with the reason its files are not store files.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "src", "samplestore")

FILE_ACCESS = re.compile(
    r"(?<![\w.])open\("  # the builtin open (not os.open, not a method called open)
    r"|\bos\.(open|replace|rename|renames|unlink|remove|rmdir|removedirs|makedirs|mkdir|walk|scandir|listdir"
    r"|fsync|pread|preadv|pwrite|stat|lstat|truncate|link|symlink)\("
    r"|\bos\.path\.(exists|lexists|isfile|isdir|islink|getsize|getmtime)\("
    r"|\bshutil\.(rmtree|copy\w*|move)\("
    r"|\bglob\b|\bpathlib\b|\bio\.open\("
)

#: Whole files whose file access is not to store paths.
ALLOWED_FILES = {
    "catalog/sqlite.py": "the SQLite catalog's own database file (catalog.db) and the folder holding it",
    "table/ingest.py": "the user's source files being ingested (CSV/TSV/Parquet), read-only",
    "bench/format.py": "benchmark scratch files, written by format.write_file and pyarrow",
    "bench/loader.py": "benchmark scratch Parquet files and /proc/PID/status",
    "bench/report.py": "/proc/cpuinfo, /proc/meminfo, and the benchmark report folder the user names",
    "bench/sequence.py": "benchmark scratch Parquet files (the store itself goes through open_store)",
}

#: Single lines (by file and a piece of the line) whose file access is not to store paths.
ALLOWED_LINES = {
    ("cli/main.py", "with open(a.schema) as f:"): "the user's schema file (samplestore create --schema)",
    ("cli/main.py", "if not os.path.exists(p):"): "the user's input files (samplestore ingest)",
    ("cli/main.py", "os.path.getsize(p) for p in a.files"): "the user's input files (samplestore ingest)",
    ("cli/main.py", "if os.path.isdir(out):"): "the export output the user names (not a store path)",
    ("cli/main.py", "if not os.path.isdir(folder):"): "the export output's folder (not a store path)",
    ("cli/main.py", 'open(os.path.join(a.out, "bench.md"))'): "the benchmark report just written",
    ("cli/main.py", "os.open(os.devnull, os.O_WRONLY)"): "silencing stdout when its reader went away",
}


def _offending_lines():
    found, used = [], set()
    for folder, _dirs, names in os.walk(PACKAGE):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, PACKAGE).replace(os.sep, "/")
            if rel.startswith("storage/") or rel in ALLOWED_FILES:
                used.add(rel)
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if not FILE_ACCESS.search(line):
                        continue
                    key = next((k for k in ALLOWED_LINES if k[0] == rel and k[1] in line), None)
                    if key is not None:
                        used.add(key)
                        continue
                    found.append(f"src/samplestore/{rel}:{lineno}: {line.strip()}")
    return found, used


def test_no_module_outside_the_storage_seam_touches_files():
    found, _used = _offending_lines()
    assert not found, ("file access outside samplestore/storage/ (go through table.storage / store.storage, "
                       "or allow-list it in tests/storage/test_seam.py with the reason):\n" + "\n".join(found))


def test_the_allow_list_holds_nothing_stale():
    _found, used = _offending_lines()
    stale = [k for k in (*ALLOWED_FILES, *ALLOWED_LINES) if k not in used]
    assert not stale, f"allow-list entries that match nothing any more: {stale}"


def test_the_check_sees_what_it_forbids():
    for line in ("with open(p) as f:", "os.replace(a, b)", "os.unlink(p)", "for d, _, n in os.walk(x):",
                 "import glob", "shutil.rmtree(d)", "fd = os.open(p, os.O_RDONLY)"):
        assert FILE_ACCESS.search(line), line
    for line in ("reader = self._open(task)", "storage.open_read(p)", "FileReader(path, storage)"):
        assert not FILE_ACCESS.search(line), line
