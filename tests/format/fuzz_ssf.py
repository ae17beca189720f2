"""Fuzz the .ssf reader with checksum-fixed mutations of a file holding every kind and encoding.

Run as a script (``tests/format/test_fuzz.py`` runs it in a subprocess under an
address-space limit, so that a crash or a memory blow-up fails the test instead of killing
pytest)::

    python tests/format/fuzz_ssf.py --seed 0 --mutations 2100 --workdir /tmp/fuzz [--limit-gib 2]

Each mutation targets a place where the reader must check something: integer fields of the
trailer, footer, chunk table, chunk and stream heads (set to boundary values), zstd frame
headers (the declared content size above all), lengths streams and plane-size tables,
column descriptors, plus random byte flips and truncations. After the mutation every chunk
checksum and the footer checksum are recomputed, so the mutated bytes reach the decoders.

Every mutated file is read three ways: ``FileReader.read()`` (the Arrow path),
``read_raw`` of every row group (the path the training loader's ``load_window`` takes) and
``FileReader.verify()``. The allowed outcomes:

``same``       the data equals the original exactly;
``corrupt``    ``CorruptFileError`` naming this file (and, from ``verify``, the same verdict);
``different``  a checksum-valid file whose streams still decode consistently, holding other
               values (a flipped id, a changed frame-of-reference base ...): the data is
               structurally valid (Arrow's full validation passes; offsets start at 0, never
               decrease and end at the values' length; every buffer has the size the schema
               and row counts imply). With checksums recomputed nothing can tell such a file
               from one written that way.

Anything else (another exception, data that fails validation, a crash, a MemoryError) is a
bug; the first one is reported with the seed, mutation index, kind and offset. The result
is one JSON object on stdout; each case is written to stderr before it is tried, so the last
line there names the case that killed the process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def _limit_memory(gib: float) -> None:
    limit = int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fuzz the .ssf reader with checksum-fixed mutations.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mutations", type=int, default=2100, help="checksum-fixed mutations to try")
    p.add_argument("--workdir", help="where to write the original and the mutated files")
    p.add_argument("--limit-gib", type=float, default=2.0, help="address-space limit (0: none)")
    p.add_argument("--check-limit", action="store_true",
                   help="only check that the limit lets the imports work and refuses a 3 GiB array")
    return p.parse_args(argv)


if __name__ == "__main__":
    ARGS = _parse_args()
    if ARGS.limit_gib > 0:
        _limit_memory(ARGS.limit_gib)  # before numpy and pyarrow map anything: their mappings count too

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

import samplestore as ss  # noqa: E402
from samplestore.format import _codec  # noqa: E402
from samplestore.format import FileReader, write_file  # noqa: E402
from samplestore.format.spec import Codec, DType, Encoding  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ssf_layout import IntField, fix_checksums, pack_chunk, parse, stream, with_chunks, zstd_frame_header  # noqa: E402

BOUNDARY = [0, 1, 2, 7, 8, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 3 << 30,
            2**62, 2**63 - 1, 2**63, 2**64 - 1, -1, -2]


def original_table() -> tuple[ss.Schema, pa.Table]:
    """Fixed data that makes the writer use every encoding and codec (independent of the seed)."""
    rng = np.random.default_rng(12345)
    n = 400
    i = np.arange(n)

    def lists(lengths, values, t=pa.int64()):
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, t))

    small = rng.integers(0, 5, n)
    ids = rng.integers(0, 40, int(small.sum())) * 1_000_003  # dictionary
    id_len = np.where(i % 50 == 0, 300 + i % 7, small)  # frame-of-reference lengths, 2 bytes wide
    long_ids = rng.integers(0, 40, int(id_len.sum())) * 1_000_003
    big_len = rng.integers(0, 3, n)
    big = rng.integers(-(2**63), 2**63 - 1, int(big_len.sum()), dtype=np.int64)  # plain, incompressible
    hist_len = rng.integers(0, 8, n)
    ts = 1_700_000_000_000_000 + np.cumsum(rng.integers(0, 5_000_000, int(hist_len.sum())))
    weights = (rng.integers(0, 4, int(small.sum())) / 4).astype(np.float32)
    # Each of 10 users' samples slides one item over their history: cross-row coded.
    items = rng.integers(0, 2**62, n + 20 * 10)
    win_len = np.minimum(i % 40 + 1, 20)
    win_start = (i // 40) * 60 + i % 40 + 1 - win_len
    windows = items[np.concatenate([np.arange(s, s + k) for s, k in zip(win_start, win_len)])]
    schema = ss.Schema([
        ss.Dense("dense", dim=4), ss.Dense("counts", dim=2), ss.Sparse("ids"), ss.Sparse("big_ids"),
        ss.Sparse("tags", weighted=True), ss.Sequence("hist", timestamps=True),
        ss.Sequence("windows"), ss.Embedding("e16", dim=2, storage="float16"), ss.Embedding("ebf", dim=2, storage="bfloat16"),
        ss.Label("click"), ss.Scalar("user_id", "int64"), ss.Scalar("ts", "timestamp"),
        ss.Scalar("ds", "string"), ss.Scalar("ok", "bool"), ss.Scalar("score", "float64"),
    ])
    table = schema.conform({
        "dense": rng.standard_normal((n, 4)).astype(np.float32),
        "counts": rng.integers(0, 3, (n, 2)).astype(np.float32),
        "ids": lists(id_len, long_ids),
        "big_ids": lists(big_len, big),
        "tags": pa.StructArray.from_arrays([lists(small, ids), lists(small, weights, pa.float32())], ["ids", "weights"]),
        "hist": pa.StructArray.from_arrays([lists(hist_len, rng.integers(0, 1000, int(hist_len.sum()))),
                                            lists(hist_len, ts)], ["ids", "ts"]),
        "windows": lists(win_len, windows),
        "e16": rng.standard_normal((n, 2)).astype(np.float32),
        "ebf": rng.standard_normal((n, 2)).astype(np.float32),
        "click": (rng.random(n) < 0.3).astype(np.float32),
        "user_id": pa.array([None if k % 11 == 0 else int(v) for k, v in enumerate(rng.integers(0, 10**12, n))],
                            pa.int64()),
        "ts": pa.array(1_700_000_000_000_000 + i * 1_000_000, pa.timestamp("us")),
        "ds": pa.array([None if k % 13 == 0 else f"2026-11-{k % 3 + 1:02d}" for k in range(n)]),
        "ok": pa.array([None if k % 7 == 0 else bool(k % 2) for k in range(n)]),
        "score": (i / 3.0).astype(np.float64),
    })
    return schema, table


class Fuzzer:
    """Seeded mutations of one intact file, each aimed at a place the reader must check."""

    def __init__(self, blob: bytes, layout, rng: np.random.Generator) -> None:
        self.blob = blob
        self.lay = layout
        self.rng = rng
        # Checksum fields are rewritten by fix_checksums anyway, and the statistics section is
        # never read by a decoder: neither is worth a mutation.
        fields = [f for f in layout.int_fields() if not f.checksum and not f.name.startswith("stats[")]
        self.stream_fields = [f for f in fields if f.name.startswith("stream[") or f.name.endswith(".streams")]
        self.footer_fields = [f for f in fields if not f.name.startswith(("stream[", "chunk["))]
        self.frames: list[dict[str, int]] = []  # header fields of every zstd frame (streams and planes)
        self.lengths = []  # (stream, element width) of every lengths stream stored without zstd
        self.plane_tables: list[tuple[int, int]] = []  # (offset, planes) of zstd plane-size tables
        self.payloads: list[tuple[int, int]] = []  # (start, end) of every stream's stored bytes
        for ch, sm in layout.streams():
            self.payloads.append((sm.data_at, sm.data_at + sm.stored_size))
            if sm.codec == Codec.ZSTD:
                self.frames.append(zstd_frame_header(blob, sm.data_at))
            elif sm.codec == Codec.ZSTD_PLANES:
                self.plane_tables.append((sm.data_at, sm.param0))
                pos = sm.data_at + 4 * sm.param0
                for k in range(sm.param0):
                    size = int.from_bytes(blob[sm.data_at + 4 * k: sm.data_at + 4 * k + 4], "little")
                    if size != sm.count:  # a raw plane is stored at full size, the others are frames
                        self.frames.append(zstd_frame_header(blob, pos))
                    pos += size
            jagged_lengths = sm.role == 0 and len(ch.streams) in (2, 3) and sm.dtype == DType.INT64
            string_lengths = sm.role == 1 and sm.dtype == DType.INT64 and ch.streams[-1].dtype == DType.UINT8
            if (jagged_lengths or string_lengths) and sm.codec == Codec.NONE and sm.stored_size:
                self.lengths.append((sm, sm.param1 if sm.encoding == Encoding.FOR else 8))
        self.frames = [f for f in self.frames if f]
        self.descriptors = layout.sections["descriptors"]
        self.kinds = [  # (weight, name, method)
            (22, "stream_field", self.stream_field), (14, "footer_field", self.footer_field),
            (12, "zstd_header", self.zstd_header), (10, "lengths_value", self.lengths_value),
            (6, "plane_sizes", self.plane_sizes), (8, "descriptor_byte", self.descriptor_byte),
            (6, "payload_byte", self.payload_byte), (12, "byte_flip", self.byte_flip),
            (5, "count_and_size", self.count_and_size), (2, "truncate", self.truncate),
            (3, "rows_shift", self.rows_shift),
        ]
        total = sum(w for w, _, _ in self.kinds)
        self.weights = [w / total for w, _, _ in self.kinds]

    def value_for(self, f: IntField, orig: int) -> int:
        """A boundary value most often, else the original nudged, doubled, halved or random."""
        r = self.rng.random()
        if r < 0.65:
            return int(self.rng.choice(BOUNDARY))
        if r < 0.85:
            return orig + int(self.rng.choice([-8, -2, -1, 1, 2, 8, 4096]))
        if r < 0.95:
            return orig * 2 if self.rng.random() < 0.5 else orig // 2
        return int(self.rng.integers(0, 1 << min(63, 8 * f.size)))

    def set_field(self, buf: bytearray, f: IntField) -> str:
        orig = f.read(buf)
        f.write(buf, self.value_for(f, orig))
        return f"{f.name} {orig} -> {f.read(buf)}"

    # -- mutations: each edits buf in place and returns (offset, detail) ------------------
    def stream_field(self, buf):
        f = self.stream_fields[int(self.rng.integers(len(self.stream_fields)))]
        return f.at, self.set_field(buf, f)

    def footer_field(self, buf):
        f = self.footer_fields[int(self.rng.integers(len(self.footer_fields)))]
        return f.at, self.set_field(buf, f)

    def zstd_header(self, buf):
        hdr = self.frames[int(self.rng.integers(len(self.frames)))]
        r = self.rng.random()
        if r < 0.6 and hdr["fcs_size"]:
            # The declared content size: a boundary value (3 GiB, 2^64-1 ...) or off by a little.
            at, size = hdr["fcs_at"], hdr["fcs_size"]
            orig = int.from_bytes(buf[at:at + size], "little")
            v = int(self.rng.choice(BOUNDARY)) if self.rng.random() < 0.6 else orig + int(self.rng.choice([-1, 1, 64]))
            buf[at:at + size] = (v % (1 << (8 * size))).to_bytes(size, "little")
            return at, f"frame content size field {orig} -> {int.from_bytes(buf[at:at + size], 'little')}"
        at = hdr["descriptor_at"] - 4 + int(self.rng.integers(0, hdr["header_end"] - hdr["descriptor_at"] + 4))
        old = buf[at]
        buf[at] = int(self.rng.integers(0, 256)) if r < 0.8 else old ^ (1 << int(self.rng.integers(8)))
        return at, f"frame header byte {old:#x} -> {buf[at]:#x}"

    def lengths_value(self, buf):
        sm, width = self.lengths[int(self.rng.integers(len(self.lengths)))]
        k = int(self.rng.integers(max(sm.count, 1)))
        at = sm.data_at + k * width
        f = IntField(f"lengths[{k}] of stream at {sm.head_at}", at, width, signed=width == 8)
        return at, self.set_field(buf, f)

    def plane_sizes(self, buf):
        at0, planes = self.plane_tables[int(self.rng.integers(len(self.plane_tables)))]
        f = IntField("plane size", at0 + 4 * int(self.rng.integers(planes)), 4)
        return f.at, self.set_field(buf, f)

    def descriptor_byte(self, buf):
        s0, s1 = self.descriptors
        at = int(self.rng.integers(s0, s1))
        old = buf[at]
        buf[at] = int(self.rng.choice(list(b'{}[]":,0123456789-eE.tfnaxyz\\ '))) if self.rng.random() < 0.7 \
            else old ^ (1 << int(self.rng.integers(8)))
        return at, f"descriptor byte {bytes([old])!r} -> {bytes([buf[at]])!r}"

    def payload_byte(self, buf):
        s0, s1 = self.payloads[int(self.rng.integers(len(self.payloads)))]
        if s1 <= s0:
            return self.byte_flip(buf)
        at = int(self.rng.integers(s0, s1))
        old = buf[at]
        buf[at] = int(self.rng.choice([0, 0x7F, 0x80, 0xFF, old ^ 1, old ^ 0x80]))
        return at, f"payload byte {old:#x} -> {buf[at]:#x}"

    def byte_flip(self, buf):
        at = int(self.rng.integers(0, len(buf)))
        old = buf[at]
        buf[at] ^= 1 << int(self.rng.integers(8))
        return at, f"bit flip {old:#x} -> {buf[at]:#x}"

    def count_and_size(self, buf):
        # Count and encoded size changed together (consistent for a plain stream), so only
        # the bytes actually there can refute them.
        ch, sm = self.lay.streams()[int(self.rng.integers(len(self.lay.streams())))]
        count = int(self.rng.choice([2**31 - 1, 2**31, 2**32, 3 << 30, 2**40, 2**61, sm.count * 2, sm.count + 1]))
        item = {1: 8, 2: 4, 3: 4, 4: 2, 5: 2, 6: 8, 7: 1}.get(sm.dtype, 1)
        IntField("count", sm.head_at + 8, 8).write(buf, count)
        IntField("encoded_size", sm.head_at + 16, 8).write(buf, count * item)
        return sm.head_at, f"stream {ch.name}@{ch.row_group}#{sm.role} count {sm.count} -> {count}, size x{item}"

    def rows_shift(self, buf):
        # A row group's rows and the file's rows moved together (their sum still agrees).
        rg = int(self.rng.integers(self.lay.num_row_groups))
        delta = int(self.rng.choice([1, -1, 2**31, 2**32, 2**62, -(2**63)]))
        IntField("rg", self.lay.sections["rg_rows"][0] + 8 * rg, 8).write(buf, self.lay.rg_rows[rg] + delta)
        IntField("rows", self.lay.footer_at + 8, 8).write(buf, self.lay.num_rows + delta)
        return self.lay.sections["rg_rows"][0] + 8 * rg, f"rg_rows[{rg}] and rows shifted by {delta}"

    def truncate(self, buf):
        cut = int(self.rng.integers(0, len(buf)))
        del buf[cut:]
        return cut, f"truncated to {cut} bytes"

    def mutate(self) -> tuple[str, int, str, bytes, bool]:
        """(kind, offset, what changed, the mutated file, whether its checksums were fixed)."""
        i = int(self.rng.choice(len(self.kinds), p=self.weights))
        _, kind, fn = self.kinds[i]
        buf = bytearray(self.blob)
        at, detail = fn(buf)
        fixed = kind != "truncate"
        if fixed:
            fix_checksums(buf)
        return kind, at, detail, bytes(buf), fixed


def _reencode_lengths(blob: bytes, chunk, how: str) -> bytes:
    """The chunk with its (uncompressed, frame-of-reference) lengths stream re-encoded."""
    parts = []
    for sm in chunk.streams:
        data = blob[sm.data_at:sm.data_at + sm.stored_size]
        head = blob[sm.head_at:sm.head_at + 48]
        if sm.role == 0:
            assert sm.encoding == Encoding.FOR and sm.codec == 0 and sm.param0 == 0
            lengths = np.frombuffer(data, f"<u{sm.param1}").astype(np.int64)
            if how == "plain":
                head, data = stream(lengths, DType.INT64, len(lengths))
            else:
                buf = np.empty(10 * len(lengths), np.uint8)
                size = _codec.delta_varint_encode(lengths, buf)
                head, data = stream(buf[:size], DType.INT64, len(lengths), encoding=Encoding.DELTA_VARINT)
        parts.append((head, data))
    return pack_chunk(parts)


def main(a: argparse.Namespace) -> int:
    if a.check_limit:
        np.ones(10_000_000)
        pa.allocate_buffer(64 << 20)
        try:
            np.ones(3 << 30, np.uint8)
        except MemoryError:
            print("refused")
        return 0
    if not a.workdir:
        raise SystemExit("--workdir is required")
    t0 = time.perf_counter()
    schema, table = original_table()
    os.makedirs(a.workdir, exist_ok=True)
    orig_path = os.path.join(a.workdir, "original.ssf")
    # Row group 1 of 2 is taken from a copy written without compression, so the file holds raw
    # streams (lengths the fuzzer can edit in place) beside zstd-coded ones.
    plain_path = os.path.join(a.workdir, "plain.ssf")
    write_file(orig_path, table, schema, row_group_rows=200)
    write_file(plain_path, table, schema, row_group_rows=200, compression="none")
    with open(orig_path, "rb") as f, open(plain_path, "rb") as g:
        zblob, pblob = f.read(), g.read()
    plain = parse(pblob)
    raw_chunks = {(n, 1): pblob[c.offset:c.offset + c.length] for n in schema.names for c in [plain.chunk(n, 1)]}
    # The writer stores lengths as frame of reference; other encodings are valid too and take
    # the reader's general path (where a wrapping sum once went unnoticed): give two of them.
    raw_chunks["big_ids", 1] = _reencode_lengths(pblob, plain.chunk("big_ids", 1), "plain")
    raw_chunks["hist", 1] = _reencode_lengths(pblob, plain.chunk("hist", 1), "delta_varint")
    blob = with_chunks(zblob, raw_chunks)
    with open(orig_path, "wb") as f:
        f.write(blob)
    lay = parse(blob)
    names = schema.names
    with FileReader(orig_path) as r:
        expected = r.read()
        expected_raw = [r.read_raw(rg, names) for rg in range(r.num_row_groups)]
        rg_rows = r.row_group_rows.tolist()
    fuzzer = Fuzzer(blob, lay, np.random.default_rng(a.seed))
    path = os.path.join(a.workdir, "mutated.ssf")

    def check_raw(raw, rg):
        """'same', 'different' (structurally valid buffers), or what is wrong with them."""
        same = True
        n = rg_rows[rg]
        for name in names:
            cd, ex = raw.get(name), expected_raw[rg][name]
            if cd is None:
                return f"read_raw lost column {name}"
            for part in ("values", "offsets", "second", "validity"):
                x, y = getattr(cd, part), getattr(ex, part)
                if x is None and y is None:
                    continue
                if x is None or y is None:
                    if part != "validity":  # only validity may come and go (nulls or none)
                        return f"{name}.{part} present in one read only"
                    same = False
                    continue
                if x.dtype != y.dtype:
                    return f"{name}.{part} is {x.dtype}, expected {y.dtype}"
                if x.shape != y.shape:
                    if ex.offsets is None or part == "offsets":  # vectors and scalars: sizes are fixed by rows
                        return f"{name}.{part} holds {x.shape} values, expected {y.shape}"
                    same = False
                elif same and not np.array_equal(x.view(np.uint8), y.view(np.uint8)):
                    same = False
            if cd.validity is not None and len(cd.validity) != (n + 7) // 8:
                return f"{name}: validity bitmap of {len(cd.validity)} bytes for {n} rows"
            if cd.offsets is not None:
                o = cd.offsets
                if len(o) != n + 1 or o[0] != 0 or o[-1] != len(cd.values) or np.any(np.diff(o) < 0):
                    return f"{name}: offsets do not index the values buffer"
                if cd.second is not None and len(cd.second) != len(cd.values):
                    return f"{name}: second stream holds {len(cd.second)} values for {len(cd.values)} ids"
        return "same" if same else "different"

    def evaluate() -> tuple[str, str]:
        # 1. The Arrow path.
        try:
            with FileReader(path) as r:
                got = r.read()
            if got.schema != expected.schema or got.num_rows != expected.num_rows:
                return "bad", "read() returned a different schema or row count"
            if got.equals(expected):
                arrow = "same"
            else:
                try:
                    got.validate(full=True)
                except pa.ArrowInvalid as exc:
                    return "bad", f"read() returned invalid Arrow data: {exc}"
                arrow = "different"
        except ss.CorruptFileError as exc:
            if exc.path != path:
                return "bad", f"CorruptFileError names {exc.path!r}: {exc}"
            arrow = "corrupt"
        except BaseException as exc:  # noqa: BLE001 - anything else is what we are looking for
            return "bad", f"read() raised {type(exc).__name__}: {exc}"
        # 2. The training path (load_window -> read_raw), 3. verify.
        raw = "same"
        try:
            with FileReader(path) as r:
                present = [n for n in names if r.has_column(n)]
                for rg in range(r.num_row_groups):
                    verdict = check_raw(r.read_raw(rg, present), rg)
                    if verdict not in ("same", "different"):
                        return "bad", f"read_raw of row group {rg}: {verdict}"
                    if verdict == "different":
                        raw = "different"
        except ss.CorruptFileError as exc:
            raw = "corrupt"
            if exc.path != path:
                return "bad", f"CorruptFileError names {exc.path!r}: {exc}"
        except BaseException as exc:  # noqa: BLE001
            return "bad", f"read_raw raised {type(exc).__name__}: {exc}"
        try:
            with FileReader(path) as r:
                r.verify()
            ver = "ok"
        except ss.CorruptFileError:
            ver = "corrupt"
        except BaseException as exc:  # noqa: BLE001
            return "bad", f"verify raised {type(exc).__name__}: {exc}"
        if (arrow == "corrupt") != (ver == "corrupt"):
            return "bad", f"read() says {arrow}, verify() says {ver}"
        if arrow == "corrupt" and raw != "corrupt":
            return "bad", f"read() says corrupt, read_raw says {raw}"
        return arrow, ""

    counts: dict[str, int] = {"same": 0, "corrupt": 0, "different": 0, "bad": 0}
    by_kind: dict[str, dict[str, int]] = {}
    first_bad = None
    bad_cases: list[dict] = []
    fixed = tried = 0
    while fixed < a.mutations:  # truncations (no checksum to fix) come on top
        i = tried
        kind, at, detail, data, was_fixed = fuzzer.mutate()
        fixed += was_fixed
        tried += 1
        os.write(2, f"case seed={a.seed} index={i} kind={kind} offset={at}: {detail}\n".encode())
        with open(path, "wb") as f:
            f.write(data)
        outcome, why = evaluate()
        counts[outcome] += 1
        by_kind.setdefault(kind, {}).setdefault(outcome, 0)
        by_kind[kind][outcome] += 1
        if outcome == "bad":
            case = {"seed": a.seed, "index": i, "kind": kind, "offset": at, "mutation": detail, "problem": why}
            first_bad = first_bad or case
            if len(bad_cases) < 20:
                bad_cases.append(case)
    result = {"seed": a.seed, "mutations": tried, "checksum_fixed": fixed, "outcomes": counts,
              "by_kind": by_kind, "first_bad": first_bad, "bad_cases": bad_cases, "seconds": round(time.perf_counter() - t0, 2),
              "limit_gib": a.limit_gib}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
