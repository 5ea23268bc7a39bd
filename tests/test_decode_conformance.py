"""``aurum._native.StreamDecoder`` / ``Pipeline`` decoding against the official ``databento`` package.

Every sample file in ../shared/data (DBN v3 GLBX samples in many schemas, and DBN v1 ES files that
must be upgraded to v3) is decoded natively and compared field by field, record by record, with
``databento.DBNStore.from_file`` (which upgrades records to v3). Then the same bytes are fed in
random chunk splits: output and statistics must not depend on where the stream was cut.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import databento
import databento_dbn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

UNDEF_TIMESTAMP = 2**64 - 1

# Named in ../shared/data/README.md.
GLBX_SCHEMAS = [
    "mbo", "mbp-1", "mbp-10", "tbbo", "bbo-1s", "bbo-1m", "trades",
    "ohlcv-1s", "ohlcv-1m", "ohlcv-1h", "ohlcv-1d", "definition", "statistics", "status",
]
GLBX_FILES = [f"esh1-20201228.{s}.dbn.zst" for s in GLBX_SCHEMAS] + ["esz4-live-session-capture.dbn.zst"]
ES_REAL_FILES = [
    "esh4-20231224.mbo.dbn.zst",
    "esh4-20231225.mbo.dbn.zst",
    "esm4-20240508T000000-000002.mbo.dbn.zst",
    "esu4-20240701T2358-20240702T0002.mbp-1.dbn.zst",
    "esu4-20240701T2358-20240702T0002.trades.dbn.zst",
    "esm3-202304.definition.dbn.zst",
]
ALL_FILES = [("glbx_samples", n) for n in GLBX_FILES] + [("es_real", n) for n in ES_REAL_FILES]
# Small but varied files for the split tests (v3 mixed stream, big records, and v1 upgrades).
SPLIT_FILES = [
    ("glbx_samples", "esz4-live-session-capture.dbn.zst"),
    ("glbx_samples", "esh1-20201228.mbp-10.dbn.zst"),
    ("glbx_samples", "esh1-20201228.definition.dbn.zst"),
    ("es_real", "esm3-202304.definition.dbn.zst"),
    ("es_real", "esu4-20240701T2358-20240702T0002.trades.dbn.zst"),
    ("es_real", "esu4-20240701T2358-20240702T0002.mbp-1.dbn.zst"),
]

HEADER_FIELDS = ("ts_event", "rtype", "publisher_id", "instrument_id")
# Python-only conveniences of databento-dbn records, not record fields.
DERIVED_FIELDS = {"ts_index", "size_hint", "record_size", "ts_out"}
TRI_STATE: dict[str, bool | None] = {"Y": True, "N": False, "~": None}
FLAT_LEVEL_FIELD = re.compile(r"^(bid|ask)_(px|sz|ct)_\d\d$")


def _path(request: pytest.FixtureRequest, folder: str, name: str) -> Path:
    path = request.getfixturevalue(folder) / name
    if not path.is_file():
        pytest.skip(f"{path} not found: real DBN samples live in ../shared/data, outside the repo")
    return path


def _plain(value: Any) -> Any:
    """A databento-dbn value as a plain Python value (enums -> their value)."""
    if isinstance(value, (bool, int, str, float, list, dict)) or value is None:
        return value
    inner = getattr(value, "value", None)
    if isinstance(inner, (int, str)):
        return inner
    return value


def _official_fields(rec: Any) -> set[str]:
    """The record's own fields as the official package exposes them (minus header and conveniences)."""
    names = set()
    for name in dir(rec):
        if name.startswith("_") or name.startswith("pretty_") or name in DERIVED_FIELDS or name in HEADER_FIELDS:
            continue
        if FLAT_LEVEL_FIELD.match(name):
            continue  # flattened aliases of `levels[i]`, compared through `levels`
        if callable(getattr(rec, name)):
            continue  # methods
        names.add(name)
    return names


def _value_mismatch(got: Any, expected: Any) -> str | None:
    """None when the JSON value ``got`` equals the official value ``expected``, else a reason."""
    expected = _plain(expected)
    if isinstance(got, str) and got in TRI_STATE and (expected is None or isinstance(expected, bool)):
        # StatusMsg is_trading / is_quoting / is_short_sell_restricted: a c_char 'Y'/'N'/'~' that
        # databento-dbn exposes as True/False/None.
        return None if TRI_STATE[got] is expected else f"{got!r} != {expected!r}"
    if isinstance(expected, bool):
        return None if got in (expected, int(expected)) and not isinstance(got, str) else f"{got!r} != {expected!r}"
    if got is None and expected == "\x00":
        return None  # the dbn JSON encoder writes a NUL c_char as null; databento-dbn gives "\x00"
    if isinstance(expected, int):
        if isinstance(got, bool):
            return f"bool {got!r} != {expected!r}"
        if isinstance(got, int):
            return None if got == expected else f"{got!r} != {expected!r}"
        if isinstance(got, str) and re.fullmatch(r"-?\d+", got):
            return None if int(got) == expected else f"{got!r} != {expected!r}"
        return f"{got!r} is not the integer {expected!r}"
    if isinstance(expected, str):
        return None if got == expected else f"{got!r} != {expected!r}"
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return f"list {got!r} != {expected!r}"
        for i, (g, e) in enumerate(zip(got, expected)):
            if isinstance(g, dict):
                why = _record_mismatch_fields(g, e)
                if why:
                    return f"[{i}] {why}"
            else:
                why = _value_mismatch(g, e)
                if why:
                    return f"[{i}] {why}"
        return None
    return f"unhandled official type {type(expected).__name__}: {expected!r} vs {got!r}"


def _record_mismatch_fields(got: dict[str, Any], expected: Any) -> str | None:
    """Compare every key of a JSON object with the same-named attribute (e.g. a BidAskPair)."""
    fields = {n for n in dir(expected) if not n.startswith(("_", "pretty_")) and not callable(getattr(expected, n))}
    if set(got) != fields:
        return f"keys {sorted(got)} != {type(expected).__name__} fields {sorted(fields)}"
    for key, value in got.items():
        if not hasattr(expected, key):
            return f"{key}: no such attribute on {type(expected).__name__}"
        why = _value_mismatch(value, getattr(expected, key))
        if why:
            return f"{key}: {why}"
    return None


def assert_record_matches(index: int, text: str, rec: Any, ts_out: bool = False) -> None:
    obj = json.loads(text)
    where = f"record #{index} ({type(rec).__name__})"
    assert isinstance(obj, dict), f"{where}: not a JSON object: {text[:200]}"
    hd = obj.pop("hd")
    assert set(hd) == set(HEADER_FIELDS), f"{where}: header keys {sorted(hd)}"
    for key in HEADER_FIELDS:
        why = _value_mismatch(hd[key], getattr(rec, key))
        assert why is None, f"{where}: hd.{key}: {why}"
    if ts_out:
        why = _value_mismatch(obj.pop("ts_out"), rec.ts_out)
        assert why is None, f"{where}: ts_out: {why}"
    assert "ts_out" not in obj, f"{where}: ts_out present but the stream has none"
    expected_keys = _official_fields(rec)
    assert set(obj) == expected_keys, (
        f"{where}: JSON-only fields {sorted(set(obj) - expected_keys)}, "
        f"official-only fields {sorted(expected_keys - set(obj))}"
    )
    for key, value in obj.items():
        why = _value_mismatch(value, getattr(rec, key))
        assert why is None, f"{where}: {key}: {why}\n  json: {text[:600]}\n  official: {rec!r}"[:2000]


def _chunks(data: bytes, seed: int, max_chunk: int) -> list[bytes]:
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(data):
        n = rng.randint(1, max_chunk)
        out.append(data[pos : pos + n])
        pos += n
    return out


def _decode_all(native: Any, chunks: list[bytes]) -> list[str]:
    dec = native.StreamDecoder()
    out: list[str] = []
    for c in chunks:
        out.extend(dec.feed(c))
    dec.finish()
    assert dec.bytes_fed == sum(len(c) for c in chunks)
    return out


def _stats_after(native: Any, chunks: list[bytes]) -> dict[str, Any]:
    pipe = native.Pipeline()
    total = 0
    for c in chunks:
        total += pipe.feed(c)
    pipe.finish()
    assert pipe.failed is None
    stats = pipe.stats()
    assert total == stats["records_total"]
    return stats


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("folder", "name"), ALL_FILES, ids=[n for _, n in ALL_FILES])
def test_decode_matches_official(request: pytest.FixtureRequest, folder: str, name: str, native: Any, dbn_bytes: Any) -> None:
    path = _path(request, folder, name)
    data = dbn_bytes(path)
    dec = native.StreamDecoder()
    texts = dec.feed(data)
    dec.finish()
    assert dec.bytes_fed == len(data)
    assert dec.unknown_rtypes == 0

    store = databento.DBNStore.from_file(path)
    official = list(store)
    # DBNStore iteration upgrades every record to the v3 layout (so does the native decoder).
    file_version = data[3]
    if folder == "es_real":
        assert file_version == 1
    else:
        assert file_version == 3
    assert len(texts) == len(official) > 0
    assert [json.loads(t)["hd"]["rtype"] for t in texts] == [_plain(r.rtype) for r in official]
    for index, (text, rec) in enumerate(zip(texts, official)):
        assert_record_matches(index, text, rec)


@pytest.mark.parametrize(("folder", "name"), ALL_FILES, ids=[n for _, n in ALL_FILES])
def test_metadata_matches_official(request: pytest.FixtureRequest, folder: str, name: str, native: Any, dbn_bytes: Any) -> None:
    path = _path(request, folder, name)
    data = dbn_bytes(path)
    meta_len = 8 + int.from_bytes(data[4:8], "little")
    official = databento_dbn.Metadata.decode(data[:meta_len], upgrade_policy=databento_dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    as_is = databento.DBNStore.from_file(path).metadata
    assert as_is.version == data[3]
    assert official.version == 3

    for feeder in ("StreamDecoder", "Pipeline"):
        obj = getattr(native, feeder)()
        assert obj.metadata is None
        obj.feed(data[: meta_len - 1])
        assert obj.metadata is None, f"{feeder}: metadata before the header is complete"
        obj.feed(data[meta_len - 1 : meta_len])
        meta = obj.metadata
        assert meta is not None, f"{feeder}: no metadata after the whole header"
        assert meta["version"] == 3, f"{feeder}: records are upgraded, so the metadata version is 3"
        assert meta["dataset"] == official.dataset == as_is.dataset
        assert meta["schema"] == _plain(official.schema)
        assert meta["start"] == official.start == as_is.start
        assert meta["end"] == official.end
        assert meta["limit"] == official.limit
        assert meta["stype_in"] == _plain(official.stype_in)
        assert meta["stype_out"] == _plain(official.stype_out)
        assert meta["ts_out"] == official.ts_out
        assert list(meta["symbols"]) == list(official.symbols)
        assert list(meta["partial"]) == list(official.partial)
        assert list(meta["not_found"]) == list(official.not_found)
        mappings = meta.get("mappings")
        if isinstance(mappings, int):
            assert mappings == len(official.mappings)
        elif mappings is not None:
            assert len(mappings) == len(official.mappings)
        known = {"version", "dataset", "schema", "start", "end", "limit", "stype_in", "stype_out", "ts_out",
                 "symbols", "partial", "not_found", "mappings"}
        for key in set(meta) - known:
            if hasattr(official, key):
                assert meta[key] == _plain(getattr(official, key)), key


@pytest.mark.parametrize(("folder", "name"), SPLIT_FILES, ids=[n for _, n in SPLIT_FILES])
def test_every_two_chunk_split_near_the_header(
    request: pytest.FixtureRequest, folder: str, name: str, native: Any, dbn_bytes: Any
) -> None:
    """Cut once, anywhere in the metadata header and the first records: same records out."""
    data = dbn_bytes(_path(request, folder, name))
    whole = _decode_all(native, [data])
    meta_len = 8 + int.from_bytes(data[4:8], "little")
    cuts = set(range(0, min(len(data), meta_len + 1200)))
    cuts |= set(range(0, len(data), max(97, len(data) // 300))) | {len(data) - 1, len(data)}
    for cut in sorted(cuts):
        parts = [p for p in (data[:cut], data[cut:]) if p]
        assert _decode_all(native, parts) == whole, f"cut at byte {cut}"


@pytest.mark.parametrize(("folder", "name"), SPLIT_FILES, ids=[n for _, n in SPLIT_FILES])
def test_random_splits_give_identical_output_and_stats(
    request: pytest.FixtureRequest, folder: str, name: str, native: Any, dbn_bytes: Any
) -> None:
    data = dbn_bytes(_path(request, folder, name))
    path = _path(request, folder, name)
    whole = _decode_all(native, [data])
    whole_stats = _stats_after(native, [data])
    official = list(databento.DBNStore.from_file(path))
    assert whole_stats["records_total"] == len(official) == len(whole)
    by_rtype = {int(k): v for k, v in whole_stats["records_by_rtype"].items()}
    assert by_rtype == dict(Counter(_plain(r.rtype) for r in official))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(seed=st.integers(0, 2**32 - 1), max_chunk=st.sampled_from([1, 2, 7, 8, 57, 64, 200, 529, 4096, 1 << 20]))
    def check(seed: int, max_chunk: int) -> None:
        chunks = _chunks(data, seed, max_chunk)
        assert _decode_all(native, chunks) == whole
        stats = _stats_after(native, chunks)
        assert stats["records_total"] == whole_stats["records_total"]
        assert stats["records_by_rtype"] == whole_stats["records_by_rtype"]
        assert stats == whole_stats  # every counter, not only the two above

    check()


def test_random_splits_on_a_real_mbo_day(es_real: Path, native: Any, dbn_bytes: Any) -> None:
    """A larger v1 MBO file: a few random splits, same JSON, same stats, same final book."""
    path = es_real / "esh4-20231224.mbo.dbn.zst"
    if not path.is_file():
        pytest.skip(f"{path} not found: real DBN samples live in ../shared/data, outside the repo")
    data = dbn_bytes(path)
    whole = _decode_all(native, [data])
    whole_stats = _stats_after(native, [data])
    for seed, max_chunk in [(1, 13), (2, 64), (3, 1000), (4, 65536)]:
        chunks = _chunks(data, seed, max_chunk)
        assert _decode_all(native, chunks) == whole, (seed, max_chunk)
        assert _stats_after(native, chunks) == whole_stats, (seed, max_chunk)


def _synthetic_ts_out_stream() -> tuple[bytes, list[Any]]:
    """A v3 MBO stream with ts_out=1 (each record carries a trailing send timestamp)."""
    meta = databento_dbn.Metadata(
        dataset="GLBX.MDP3",
        schema=databento_dbn.Schema.MBO,
        start=1_700_000_000_000_000_000,
        stype_in=databento_dbn.SType.RAW_SYMBOL,
        stype_out=databento_dbn.SType.INSTRUMENT_ID,
        symbols=["GCZ5"],
        ts_out=True,
    ).encode()
    body = b""
    for i in range(40):
        body += bytes(
            databento_dbn.MBOMsg(
                publisher_id=1, instrument_id=42, ts_event=1_700_000_000_000_000_000 + i, order_id=1000 + i,
                price=(2000 + i) * 10**9, size=1 + i % 5, action=databento_dbn.Action.ADD,
                side=databento_dbn.Side.BID if i % 2 else databento_dbn.Side.ASK,
                ts_recv=1_700_000_000_000_001_000 + i, flags=0x80, channel_id=0, sequence=i,
                ts_out=1_700_000_000_000_002_000 + i,
            )
        )
    data = meta + body
    decoder = databento_dbn.DBNDecoder()
    decoder.write(data)
    official = [r for r in decoder.decode() if not isinstance(r, databento_dbn.Metadata)]
    return data, official


def test_ts_out_stream_decodes_and_splits(native: Any) -> None:
    data, official = _synthetic_ts_out_stream()
    assert len(official) == 40 and data[_meta_len(data)] == 16  # 64-byte MBO records
    whole = _decode_all(native, [data])
    assert len(whole) == len(official)
    for index, (text, rec) in enumerate(zip(whole, official)):
        assert_record_matches(index, text, rec, ts_out=True)
    meta_len = _meta_len(data)
    for cut in range(1, meta_len + 70):
        assert _decode_all(native, [data[:cut], data[cut:]]) == whole, f"cut at byte {cut}"
    for seed in range(20):
        assert _decode_all(native, _chunks(data, seed, 1 + seed * 3)) == whole, seed

    # The pipeline steps records by their length byte, so ts_out must not disturb it either.
    whole_stats = _stats_after(native, [data])
    assert whole_stats["records_total"] == 40
    for cut in (1, 8, 60, meta_len - 1, meta_len, meta_len + 56, meta_len + 64):
        assert _stats_after(native, [data[:cut], data[cut:]]) == whole_stats, f"cut at byte {cut}"


def _meta_len(data: bytes) -> int:
    return 8 + int.from_bytes(data[4:8], "little")
