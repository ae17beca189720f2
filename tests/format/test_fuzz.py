"""Fuzz the reader with checksum-fixed mutations, in a subprocess under an address-space limit.

``fuzz_ssf.py`` mutates a file holding every feature kind, encoding and codec at the places
a reader must check (stream heads, length and offset fields, column descriptors, the footer
index, zstd frame headers, lengths streams; boundary values, byte flips, truncations) and
recomputes every checksum, so each mutation reaches the decoders. Each mutated file must read
as the original data or raise ``CorruptFileError``, except that a mutation of values (payload
bytes, list lengths, a stream's value parameters) may leave a consistent checksum-valid file
holding other values, which no reader can tell from a file written that way. A crash or a
memory blow-up kills only the subprocess and fails here.

``SAMPLESTORE_FUZZ_SEED`` picks the seed (default 0: every run of CI tries the same cases);
``SAMPLESTORE_FUZZ_MUTATIONS`` the number of checksum-fixed mutations (default 2100).
"""

import json
import os
import subprocess
import sys

import pytest

import samplestore

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_ssf.py")
LIMIT_GIB = 2.0
SEED = int(os.environ.get("SAMPLESTORE_FUZZ_SEED", "0"))
MUTATIONS = int(os.environ.get("SAMPLESTORE_FUZZ_MUTATIONS", "2100"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(samplestore.__file__))
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def run_fuzz(workdir, seed: int, mutations: int) -> dict:
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--seed", str(seed), "--mutations", str(mutations), "--workdir", str(workdir),
         "--limit-gib", str(LIMIT_GIB)],
        capture_output=True, text=True, timeout=300, env=_env())
    cases = [line for line in proc.stderr.splitlines() if line.startswith("case ")]
    last = cases[-1] if cases else "(before the first case)"
    assert proc.returncode == 0, (
        f"fuzz process died with status {proc.returncode} (negative: killed by that signal) on {last}\n"
        f"{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_checksum_fixed_mutations_read_exactly_or_raise_corrupt_file_error(tmp_path):
    check_fuzz(run_fuzz(tmp_path, SEED, MUTATIONS), minimum=2000)


def test_a_hundred_and_fifty_mutations_for_the_quick_suite(tmp_path):
    # The same checks on fewer cases (other seeds than the full run's), for `make test-fast`.
    check_fuzz(run_fuzz(tmp_path, SEED + 1000, 150), minimum=150)


def check_fuzz(result: dict, minimum: int) -> None:
    print(json.dumps({k: result[k] for k in ("seed", "mutations", "checksum_fixed", "outcomes", "seconds")}))
    bad = result["first_bad"]
    assert bad is None, (f"{result['outcomes']['bad']} bad outcomes; first: seed {bad['seed']}, case {bad['index']} "
                         f"({bad['kind']} at offset {bad['offset']}: {bad['mutation']}): {bad['problem']}")
    assert result["checksum_fixed"] >= minimum
    assert set(result["outcomes"]) == {"same", "corrupt", "different", "bad"}
    assert sum(result["outcomes"].values()) == result["mutations"]
    # The mutations reach the decoders: most files are refused, and every kind of mutation ran.
    assert result["outcomes"]["corrupt"] > result["mutations"] // 2
    assert len(result["by_kind"]) == 11
    # Another consistent file is possible only where a mutation changes values that no check
    # can tell from written ones (payload bytes, list lengths, a stream's value parameters).
    # A file whose structure was changed reads exactly as before or is refused.
    for kind in ("plane_sizes", "count_and_size", "descriptor_byte", "rows_shift", "zstd_header", "footer_field",
                 "truncate"):
        assert set(result["by_kind"][kind]) <= {"same", "corrupt"}, (kind, result["by_kind"][kind])


def test_fuzz_process_address_space_limit_bites():
    # The limit the fuzz runs under turns a blow-up into a failure (MemoryError), while
    # numpy, pyarrow and samplestore import and work under it.
    proc = subprocess.run([sys.executable, SCRIPT, "--check-limit", "--limit-gib", str(LIMIT_GIB)],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "refused", proc.stderr[-2000:]
