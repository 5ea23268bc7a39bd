#!/usr/bin/env python3
"""Decode + L3 book throughput: Aurum's native pipeline against the Python alternatives.

One run, the same in-memory uncompressed DBN bytes for every path, medians of several passes:

* ``aurum native``: ``aurum._native.Pipeline(engines=False)`` fed the bytes in 64 KiB chunks
  (decode, L3 book, trade/top/bar rings; no microstructure engines, so it does what the other
  paths do), a fresh pipeline per pass. Also ``Pipeline.feed_file`` on a ``.dbn.zst``
  (zstd + decode + book, all native).
* ``databento``: ``DBNStore.from_bytes(BytesIO(bytes)).replay(cb)`` with a no-op callback
  (decode to Python objects only) and with ``ReferenceBook.apply`` (the same L3 book in Python).
* ``nautilus``: ``DatabentoDataLoader.from_dbn_file`` -> ``OrderBookDelta`` list, each applied
  to an L3 ``OrderBook``, in both the pyo3 and legacy Cython flavours. NautilusTrader runs in a
  subprocess with its own interpreter (its pins conflict with ours, see bench/README.md). Its
  loader only opens zstd files, so it reads the same bytes wrapped in a zstd frame of raw
  (stored, uncompressed) blocks: no decompression work, just a copy.
* ``zstd``: decompression alone with python ``zstandard``.

Every path ends with its final top of book (bid_px, bid_sz, ask_px, ask_sz); the script prints
them and whether they agree. Slow Python paths run on a prefix of the big synthetic file (cut
at an F_LAST boundary); the native pipeline is also run on that prefix to check their tops.

Usage:  python bench/bench_decode_book.py [--quick] [--out bench/results/NAME.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ES = REPO.parent / "shared" / "data" / "es-real" / "esh4-20231225.mbo.dbn.zst"
DEFAULT_NAUTILUS_PY = Path("/work/nautilus-venv/bin/python")
CHUNK = 64 * 1024
UNDEF_PRICE = 2**63 - 1
F_LAST = 0x80
MBO_SIZE = 56
MIN_FAST_S = 1.0  # fast paths: repeat short passes until they add up to this (max 100 passes)
MIN_SLOW_S = 2.0  # Python paths: the same, max 30 passes

Top = tuple[int, int, int, int]  # bid_px, bid_sz, ask_px, ask_sz


# --------------------------------------------------------------------------------------------
# helpers usable from both interpreters (stdlib only)


def raw_zstd_frame(data: bytes | memoryview, block: int = 1 << 17) -> bytes:
    """Wrap ``data`` in one zstd frame made of Raw (stored) blocks: valid zstd, no compression."""
    out = bytearray(b"\x28\xb5\x2f\xfd")  # magic 0xFD2FB528, little-endian
    out += bytes([0x00, 0x38])  # frame header: no content size/checksum/dict; window 2^17
    view = memoryview(data)
    n = len(view)
    for i in range(0, max(n, 1), block):
        chunk = view[i : i + block]
        last = 1 if i + block >= n else 0
        out += ((len(chunk) << 3) | last).to_bytes(3, "little")  # block type 0 = Raw
        out += chunk
    return bytes(out)


def median_s(times_ns: list[int]) -> float:
    return statistics.median(times_ns) / 1e9


def fmt_top(top: Top | None) -> str:
    if top is None:
        return "n/a"
    bp, bs, ap, asz = top

    def px(p: int) -> str:
        return "-" if p == UNDEF_PRICE else f"{Decimal(p) / Decimal(10**9):.2f}"

    return f"{px(bp)} x {bs} / {px(ap)} x {asz}"


# --------------------------------------------------------------------------------------------
# NautilusTrader worker (runs inside the Nautilus interpreter)


def nautilus_worker(spec_json: str) -> None:
    """Run the Nautilus jobs described by ``spec_json``; print one JSON line of results."""
    import nautilus_trader
    from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader
    from nautilus_trader.core import nautilus_pyo3 as pyo3
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId

    def to_fixed(price: Any) -> int:
        return int(Decimal(str(price)) * 10**9)

    def top_of(bids: list[Any], asks: list[Any]) -> list[int]:
        b = [to_fixed(bids[0].price), int(round(float(bids[0].size())))] if bids else [UNDEF_PRICE, 0]
        a = [to_fixed(asks[0].price), int(round(float(asks[0].size())))] if asks else [UNDEF_PRICE, 0]
        return b + a

    spec = json.loads(spec_json)
    loader = DatabentoDataLoader()
    results = []
    for job in spec["jobs"]:
        times: list[int] = []
        top: list[int] = []
        n_deltas = 0
        error = None
        try:
            while len(times) < job["repeats"] or (sum(times) < job["min_total_s"] * 1e9 and len(times) < 30):
                gc.collect()
                if job["variant"] == "pyo3":
                    t0 = time.perf_counter_ns()
                    deltas = loader.from_dbn_file(
                        job["path"], instrument_id=InstrumentId.from_str(job["instrument"]), as_legacy_cython=False
                    )
                    book = pyo3.OrderBook(pyo3.InstrumentId.from_str(job["instrument"]), pyo3.BookType.L3_MBO)
                    apply = book.apply_delta
                    for delta in deltas:
                        apply(delta)
                    t1 = time.perf_counter_ns()
                else:
                    t0 = time.perf_counter_ns()
                    deltas = loader.from_dbn_file(
                        job["path"], instrument_id=InstrumentId.from_str(job["instrument"]), as_legacy_cython=True
                    )
                    book = OrderBook(InstrumentId.from_str(job["instrument"]), BookType.L3_MBO)
                    apply = book.apply_delta
                    for delta in deltas:
                        apply(delta)
                    t1 = time.perf_counter_ns()
                times.append(t1 - t0)
                n_deltas = len(deltas)
                top = top_of(book.bids(), book.asks())
                del deltas, book, apply
        except Exception as exc:  # report, do not kill the whole benchmark
            error = f"{type(exc).__name__}: {exc}"
        results.append({"times_ns": times, "top": top, "n_deltas": n_deltas, "error": error})
    print(json.dumps({"version": nautilus_trader.__version__, "results": results}))


# --------------------------------------------------------------------------------------------
# the benchmark proper


class Row:
    def __init__(self, dataset: str, path: str, scope: str, records: int, times_ns: list[int],
                 top: Top | None, note: str = "") -> None:
        self.dataset, self.path, self.scope, self.records = dataset, path, scope, records
        self.times_ns, self.top, self.note = times_ns, top, note

    @property
    def ok(self) -> bool:
        return bool(self.times_ns)

    @property
    def rate(self) -> float:
        return self.records / median_s(self.times_ns) if self.ok else float("nan")


def timed(fn: Callable[[], Any], repeats: int, min_total_s: float = 0.0, max_repeats: int = 100
          ) -> tuple[list[int], Any]:
    """Run ``fn`` at least ``repeats`` times, and more (up to ``max_repeats``) until the passes
    add up to ``min_total_s``: short passes get enough samples for a stable median. A full
    ``gc.collect()`` (untimed; ~80 ms with databento and pandas loaded) runs before the first pass
    and before each pass longer than 50 ms. Returns the pass times in ns and the last result."""
    times: list[int] = []
    result = None
    gc.collect()
    while len(times) < repeats or (sum(times) < min_total_s * 1e9 and len(times) < max_repeats):
        result = None
        if times and times[-1] > 50_000_000:
            gc.collect()
        t0 = time.perf_counter_ns()
        result = fn()
        times.append(time.perf_counter_ns() - t0)
    return times, result


def header_len(data: bytes) -> int:
    if data[:3] != b"DBN":
        raise ValueError("not an uncompressed DBN stream")
    return 8 + int.from_bytes(data[4:8], "little")


def mbo_prefix(data: bytes, limit: int) -> tuple[bytes, int]:
    """Metadata + the first records of an MBO-only stream, cut after the last F_LAST <= limit."""
    import numpy as np

    hl = header_len(data)
    n = (len(data) - hl) // MBO_SIZE
    if limit >= n:
        return data, n
    flags = np.frombuffer(data, dtype=np.uint8, offset=hl, count=n * MBO_SIZE)[36::MBO_SIZE][:limit]
    last = np.nonzero(flags & F_LAST)[0]
    k = int(last[-1]) + 1 if last.size else limit
    return data[: hl + k * MBO_SIZE], k


def machine_info() -> dict[str, str]:
    info: dict[str, str] = {}
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Hypervisor vendor:"):
                info["hypervisor"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    info["cpu"] = model or platform.processor() or "unknown"
    info["cores"] = str(os.cpu_count())
    try:
        mem_kb = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1])
        info["memory"] = f"{mem_kb / 1024**2:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    info["os"] = f"{platform.system()} {platform.release()}"
    try:
        info["load average at start"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    info["python"] = platform.python_version()
    try:
        info["rustc"] = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["rustc"] = "n/a"
    from importlib import metadata

    for pkg in ("numpy", "databento", "databento-dbn", "zstandard"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    return info


def native_build(module: Any) -> str:
    """``release`` or ``debug`` for the loaded extension: a dev build carries DWARF sections."""
    explicit = getattr(module, "BUILD_PROFILE", None)
    if explicit:
        return str(explicit)
    path = getattr(module, "__file__", None)
    if not path:
        return "unknown"
    try:
        sections = elf_section_names(Path(path).read_bytes())
    except (OSError, ValueError, IndexError):
        return "unknown"
    if ".debug_info" in sections:
        return "debug (dev profile: .debug_info section present)"
    return "release (no .debug_info section; Cargo.toml release = fat LTO, codegen-units 1)"


def elf_section_names(blob: bytes) -> set[str]:
    """Section names of a little-endian ELF64 shared object."""
    if blob[:4] != b"\x7fELF" or blob[4] != 2 or blob[5] != 1:
        raise ValueError("not an ELF64 little-endian file")
    shoff = int.from_bytes(blob[0x28:0x30], "little")
    shentsize = int.from_bytes(blob[0x3A:0x3C], "little")
    shnum = int.from_bytes(blob[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(blob[0x3E:0x40], "little")

    def header(i: int) -> tuple[int, int]:  # (sh_name, sh_offset)
        h = shoff + i * shentsize
        return int.from_bytes(blob[h : h + 4], "little"), int.from_bytes(blob[h + 0x18 : h + 0x20], "little")

    strtab = header(shstrndx)[1]
    names = set()
    for i in range(shnum):
        start = strtab + header(i)[0]
        names.add(blob[start : blob.index(b"\0", start)].decode("ascii", "replace"))
    return names


def find_nautilus_python(arg: str | None) -> str | None:
    if arg == "none":
        return None
    candidates = [arg, os.environ.get("AURUM_NAUTILUS_PYTHON"), sys.executable,
                  str(REPO / ".venv-nautilus" / "bin" / "python"), str(DEFAULT_NAUTILUS_PY)]
    for py in candidates:
        if not py or not Path(py).exists():
            continue
        probe = subprocess.run([py, "-c", "import nautilus_trader"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return py
    return None


def run_nautilus(py: str, jobs: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    spec = json.dumps({"jobs": jobs})
    proc = subprocess.run([py, str(Path(__file__).resolve()), "--nautilus-worker", spec],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return "error", [{"times_ns": [], "top": [], "n_deltas": 0, "error": err} for _ in jobs]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["version"], out["results"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small synthetic file, fewer repeats")
    ap.add_argument("--out", help="also write the markdown report here (e.g. bench/results/NAME.md)")
    ap.add_argument("--repeats", type=int, help="passes per fast path (default 7, quick 3)")
    ap.add_argument("--slow-repeats", type=int, help="passes per slow Python path (default 3, quick 2)")
    ap.add_argument("--synth-records", type=int, help="records in the synthetic GC file (default 5M, quick 500k)")
    ap.add_argument("--python-limit", type=int,
                    help="prefix length for the databento paths on the synthetic file (default 1M, quick 100k)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--es-file", default=str(DEFAULT_ES), help="real ESH4 MBO file (.dbn.zst)")
    ap.add_argument("--nautilus-python",
                    help="interpreter with nautilus_trader installed ('none' to skip); default: the first "
                         "of $AURUM_NAUTILUS_PYTHON, this interpreter, .venv-nautilus/bin/python, "
                         "/work/nautilus-venv/bin/python that imports it")
    ap.add_argument("--nautilus-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.nautilus_worker:
        nautilus_worker(args.nautilus_worker)
        return 0

    repeats = args.repeats or (3 if args.quick else 7)
    slow_repeats = args.slow_repeats or (2 if args.quick else 3)
    n_synth = args.synth_records or (500_000 if args.quick else 5_000_000)
    py_limit = args.python_limit or (100_000 if args.quick else 1_000_000)

    sys.path.insert(0, str(REPO / "python"))  # a source checkout works without an install
    import numpy  # noqa: F401  (fail early)
    import databento as db
    import zstandard

    from aurum.testing import synth

    try:
        from aurum.testing.reference_book import ReferenceBook
        book_impl = "aurum.testing.reference_book.ReferenceBook"
    except ImportError:  # stand-in until the reference book lands
        ReferenceBook = None  # type: ignore[assignment]
        book_impl = "missing"
    try:
        from aurum import _native
    except ImportError as exc:
        _native = None  # type: ignore[assignment]
        native_error = str(exc)
    else:
        native_error = ""

    started = dt.datetime.now(dt.timezone.utc)
    info = machine_info()
    if _native is not None:
        info["aurum._native"] = f"{_native.__version__} (dbn crate {_native.DBN_CRATE_VERSION})"
        info["native build"] = native_build(_native)
    else:
        info["aurum._native"] = f"not importable: {native_error}"
    info["book (Python path)"] = book_impl
    nautilus_py = find_nautilus_python(args.nautilus_python)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="aurum-bench-"))
    rows: list[Row] = []
    notes: list[str] = []
    try:
        # ---- datasets ----------------------------------------------------------------------
        datasets = []
        es_path = Path(args.es_file)
        if es_path.exists():
            es_comp = es_path.read_bytes()
            es_raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(es_comp), read_across_frames=True).read()
            datasets.append({
                "name": f"es-real {es_path.name}", "raw": es_raw, "comp": es_comp, "comp_path": es_path,
                "iid": 17077, "instrument": "ESH4.GLBX", "py_limit": None,
            })
        else:
            notes.append(f"real ES file not found at {es_path}: skipped")
        log(f"generating {n_synth:,} synthetic GC records")
        t0 = time.perf_counter()
        s_raw = synth.synth_mbo(n_synth, seed=args.seed)
        gen_s = time.perf_counter() - t0
        notes.append(f"synthetic GC file: {n_synth:,} records ({len(s_raw) / 1e6:.0f} MB) generated by "
                     f"aurum.testing.synth.synth_mbo(seed={args.seed}) in {gen_s:.2f} s "
                     f"({n_synth / gen_s / 1e6:.2f} M rec/s)")
        s_comp = zstandard.ZstdCompressor(level=3).compress(s_raw)
        s_comp_path = tmp / "synth.dbn.zst"
        s_comp_path.write_bytes(s_comp)
        datasets.append({
            "name": f"synth GCZ6 {n_synth // 1000:,}k", "raw": s_raw, "comp": s_comp, "comp_path": s_comp_path,
            "iid": 42, "instrument": "GCZ6.GLBX", "py_limit": py_limit,
        })

        for ds in datasets:
            name, raw, iid = ds["name"], ds["raw"], ds["iid"]
            n_rec = (len(raw) - header_len(raw)) // MBO_SIZE
            full = "full"
            if ds["py_limit"] is not None and ds["py_limit"] < n_rec:
                py_raw, py_n = mbo_prefix(raw, ds["py_limit"])
                py_scope = f"prefix {py_n:,}"
            else:
                py_raw, py_n, py_scope = raw, n_rec, full

            # a. native pipeline, 64 KiB chunks from memory
            construct_ns: list[int] = []  # the Pipeline() part of each timed native_pass

            def native_pass(data: bytes = raw) -> Any:
                t0 = time.perf_counter_ns()
                pipe = _native.Pipeline(engines=False)
                construct_ns.append(time.perf_counter_ns() - t0)
                mv = memoryview(data)
                feed = pipe.feed
                n = 0
                for off in range(0, len(mv), CHUNK):
                    n += feed(mv[off : off + CHUNK])
                pipe.finish()
                return pipe, n

            def native_top(pipe: Any) -> Top:
                t = pipe.book_top(iid)
                return (t[0], t[1], t[3], t[4])

            if _native is not None:
                log(f"{name}: native feed")
                times, (pipe, n) = timed(native_pass, repeats, MIN_FAST_S)
                assert n == n_rec, (n, n_rec)
                rows.append(Row(name, "aurum native Pipeline.feed, 64 KiB chunks", full, n_rec, times, native_top(pipe),
                                f"includes Pipeline() construction, median {median_s(construct_ns) * 1e3:.2f} ms"))
                rows.append(Row(name, "aurum native, the same passes without Pipeline() construction", full, n_rec,
                                [t - c for t, c in zip(times, construct_ns)], None))
                del pipe

                log(f"{name}: native feed_file (.zst)")

                def native_file_pass(path: Path = ds["comp_path"]) -> Any:
                    f = _native.DbnFile(str(path))
                    pipe = _native.Pipeline(engines=False)
                    while pipe.feed_file(f, 1 << 20):
                        pass
                    pipe.finish()
                    return pipe

                times, pipe = timed(native_file_pass, repeats, MIN_FAST_S)
                rows.append(Row(name, "aurum native DbnFile + feed_file (.zst: zstd + decode + book)", full, n_rec,
                                times, native_top(pipe)))
                del pipe
                if py_scope != full:
                    pipe, _ = native_pass(py_raw)  # untimed: the reference top for the prefix
                    construct_ns.pop()
                    rows.append(Row(name, "aurum native Pipeline.feed (top check only)", py_scope, py_n, [],
                                    native_top(pipe), "untimed"))
                    del pipe
            else:
                rows.append(Row(name, "aurum native Pipeline.feed, 64 KiB chunks", full, n_rec, [], None,
                                "aurum._native not importable"))

            # d. zstd alone
            log(f"{name}: zstd")
            comp = ds["comp"]
            times, out = timed(lambda: zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(comp), read_across_frames=True).read(), repeats, MIN_FAST_S)
            assert out == raw
            del out
            rows.append(Row(name, "zstd decompression only (python zstandard)", full, n_rec, times, None,
                            f"{len(comp) / 1e6:.1f} MB -> {len(raw) / 1e6:.1f} MB"))

            # b. official Python path
            log(f"{name}: databento replay no-op ({py_scope})")
            times, _ = timed(lambda: db.DBNStore.from_bytes(io.BytesIO(py_raw)).replay(lambda rec: None),
                             slow_repeats, MIN_SLOW_S, 30)
            rows.append(Row(name, "databento DBNStore.replay, no-op callback (decode only)", py_scope, py_n, times, None))
            if ReferenceBook is not None:
                log(f"{name}: databento replay + ReferenceBook ({py_scope})")

                def ref_pass() -> Any:
                    book = ReferenceBook()
                    db.DBNStore.from_bytes(io.BytesIO(py_raw)).replay(book.apply)
                    return book

                times, book = timed(ref_pass, slow_repeats, MIN_SLOW_S, 30)
                t = book.top(iid)
                anomalies = dict(book.anomalies())
                rows.append(Row(name, "databento DBNStore.replay + ReferenceBook.apply", py_scope, py_n, times,
                                (t[0], t[1], t[3], t[4]), f"anomalies {anomalies}" if anomalies else ""))
                del book

            # c. NautilusTrader
            if nautilus_py is not None:
                npath = tmp / f"nautilus-{iid}.dbn.zst"
                npath.write_bytes(raw_zstd_frame(raw))
                jobs = [{"path": str(npath), "instrument": ds["instrument"], "variant": v, "repeats": slow_repeats,
                         "min_total_s": MIN_SLOW_S}
                        for v in ("pyo3", "cython")]
                log(f"{name}: nautilus ({nautilus_py})")
                version, results = run_nautilus(nautilus_py, jobs)
                info["nautilus_trader"] = f"{version} (interpreter {nautilus_py})"
                for job, res in zip(jobs, results):
                    label = ("nautilus DatabentoDataLoader (pyo3) + pyo3 OrderBook(L3_MBO).apply_delta"
                             if job["variant"] == "pyo3" else
                             "nautilus DatabentoDataLoader (legacy Cython) + OrderBook(L3_MBO).apply_delta")
                    top = tuple(res["top"]) if res["top"] else None
                    note = res["error"] or f"{res['n_deltas']:,} deltas"
                    rows.append(Row(name, label, full, n_rec, res["times_ns"], top, note))  # type: ignore[arg-type]
                npath.unlink()
            else:
                rows.append(Row(name, "nautilus", full, n_rec, [], None, "nautilus_trader not installed"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if "nautilus_trader" not in info:
        info["nautilus_trader"] = "not installed"
    report = render(rows, info, notes, started, repeats, slow_repeats, args)
    print(report)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        log(f"wrote {out}")
    return 0


def render(rows: list[Row], info: dict[str, str], notes: list[str], started: dt.datetime, repeats: int,
           slow_repeats: int, args: argparse.Namespace) -> str:
    lines = [f"# Aurum decode + L3 book benchmark ({started:%Y-%m-%d %H:%M} UTC)", ""]
    cmd = "python bench/bench_decode_book.py" + (" --quick" if args.quick else "")
    lines += [f"Command: `{cmd}`. Medians of at least {repeats} passes (native, zstd; more until they add up "
              f"to {MIN_FAST_S:g} s, max 100) / at least {slow_repeats} passes (Python and Nautilus paths; more "
              f"until {MIN_SLOW_S:g} s, max 30). Every path reads the same uncompressed DBN bytes in memory "
              "(feed_file and Nautilus read them from a temp file). Chunks: 64 KiB.", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()] + [""]

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    for name in datasets:
        rs = [r for r in rows if r.dataset == name]
        native = next((r for r in rs if r.path.startswith("aurum native Pipeline.feed, 64") and r.ok), None)
        lines += [f"## {name}", "",
                  "| path | scope | records | passes | median s | min-max s | records/s | ns/record | vs native "
                  "| native speed-up |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rs:
            if not r.ok:
                if r.note != "untimed":
                    lines.append(f"| {r.path} ({r.note}) | {r.scope} | {r.records:,} | - | - | - | - | - | - | - |")
                continue
            med = median_s(r.times_ns)
            spread = f"{min(r.times_ns) / 1e9:.4f}-{max(r.times_ns) / 1e9:.4f}"
            ratio = speed = "-"
            if native is not None:
                ratio = f"{r.rate / native.rate:.3f}x"
                speed = f"{native.rate / r.rate:.1f}x"
            lines.append(f"| {r.path} | {r.scope} | {r.records:,} | {len(r.times_ns)} | {med:.4f} | {spread} | "
                         f"{r.rate:,.0f} | "
                         f"{1e9 / r.rate:,.0f} | {ratio} | {speed} |")
        lines.append("")
        lines += ["Final top of book (bid px x size / ask px x size):", "",
                  "| path | scope | top | agrees |", "|---|---|---|---|"]
        verdicts = []
        for scope in dict.fromkeys(r.scope for r in rs):
            tops = [r for r in rs if r.scope == scope and r.top is not None]
            if not tops:
                continue
            ref = tops[0].top
            for r in tops:
                same = r.top == ref
                verdicts.append(same)
                lines.append(f"| {r.path} | {scope} | {fmt_top(r.top)} | {'yes' if same else '**NO**'} |")
        agree = all(verdicts) if verdicts else None
        lines += ["", f"All tops agree: **{'yes' if agree else 'NO' if agree is False else 'n/a'}**", ""]
        if agree is False and any(r.path.startswith("nautilus") and r.top is not None and r.top != rs[0].top
                                  for r in rs if r.scope == rs[0].scope):
            lines += ["Nautilus disagreement: its Databento decoder maps every MBO `C` to a DELETE of the "
                      "whole order, so a partial cancel (`C` with a size below the order's) removes the entire "
                      "order (databento.md §3.9: `order.size -= size`). Replaying the Nautilus deltas and "
                      "ReferenceBook event by event shows the first divergence at such a partial cancel.", ""]
        notes_ds = [f"{r.path}: {r.note}" for r in rs if r.note and r.ok]
        if notes_ds:
            lines += [f"- {n}" for n in notes_ds] + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
