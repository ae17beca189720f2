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
    # Libraries that open paths themselves: pyarrow (Parquet, CSV, raw files) and numpy.
    r"|\b(pq|parquet)\.(write_table|read_table|ParquetFile|ParquetWriter|ParquetDataset|read_metadata"
    r"|read_schema|write_to_dataset)\("
    r"|\b(pacsv|csv)\.(read_csv|open_csv|write_csv|CSVWriter)\("
    r"|\b(pa|pyarrow)\.(OSFile|memory_map|create_memory_map|input_stream|output_stream)\("
    r"|\bLocalFileSystem\(|\bnp\.(load|save|savez\w*|fromfile|memmap)\(|\.tofile\("
)

#: Whole files whose file access is not to store paths.
ALLOWED_FILES = {
    "catalog/sqlite.py": "the SQLite backend: its own database file (catalog.db) and the folder holding it; "
                         "it never sees a data file",
    "bench/format.py": "benchmark scratch files, written by format.write_file and pyarrow",
    "bench/loader.py": "benchmark scratch Parquet files and /proc/PID/status",
    "bench/lance_loader.py": "benchmark scratch Lance datasets",
    "bench/train_quality.py": "benchmark scratch Parquet files",
    "bench/report.py": "/proc/cpuinfo, /proc/meminfo, and the benchmark report folder the user names",
    "bench/sequence.py": "benchmark scratch Parquet files (the store itself goes through open_store)",
    "bench/ray_scaling.py": "benchmark scratch Parquet files and folder (the store itself goes through open_store)",
    "bench/shuffle_units.py": "benchmark scratch folder and Parquet file (the tables go through open_store)",
}

#: Single lines (by file and a piece of the line) whose file access is not to store paths.
ALLOWED_LINES = {
    ("cli/main.py", "with open(a.schema) as f:"): "the user's schema file (samplestore create --schema)",
    ("cli/main.py", "with open(a.file) as f:"): "the user's expectations file (samplestore expect)",
    ("cli/main.py", "if os.path.isdir(out):"): "the export output the user names (not a store path)",
    ("cli/main.py", "if not os.path.isdir(folder):"): "the export output's folder (not a store path)",
    ("cli/main.py", 'open(os.path.join(a.out, "bench.md"))'): "the benchmark report just written",
    ("cli/main.py", "os.open(os.devnull, os.O_WRONLY)"): "silencing stdout when its reader went away",
    ("cli/main.py", "with pq.ParquetWriter(f, "): "the export's Parquet writer, into LocalStorage's pending file",
    ("table/ingest.py", "reader = pacsv.open_csv("): "the user's CSV/TSV source file, read-only",
    ("table/ingest.py", "return pacsv.open_csv("): "the user's CSV/TSV source file, read-only",
    ("table/ingest.py", "pf = pq.ParquetFile(source)"): "a source file storage.open_input opened (path or URI)",
    ("table/ingest.py", "return pq.read_schema(source)"): "a source file storage.open_input opened (path or URI)",
    ("table/scan.py", "filesystem=pafs.LocalFileSystem()"): "pruning over made-up paths: pyarrow never opens them",
    ("datagen.py", "pacsv.write_csv(pa.table(cols), path"): "a generated Criteo TSV the user asked for",
    ("schema.py", "pyarrow.parquet.read_schema(path)"): "a docstring and a message telling the user what to call",
    ("catalog/postgres.py", "os.open(os.devnull, os.O_RDWR)"): "a forked child detaching its parent's catalog "
                                                               "sockets (never a store path)",
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
                 "import glob", "shutil.rmtree(d)", "fd = os.open(p, os.O_RDONLY)", "pq.write_table(t, path)",
                 "pq.ParquetFile(p)", "pa.memory_map(p)", "np.save(p, a)", "a.tofile(p)", "pacsv.write_csv(t, p)"):
        assert FILE_ACCESS.search(line), line
    for line in ("reader = self._open(task)", "storage.open_read(p)", "FileReader(path, storage)"):
        assert not FILE_ACCESS.search(line), line
