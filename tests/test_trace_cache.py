"""The statistics cache: a cached trace is the freshly measured one, keyed by everything it depends on."""
from __future__ import annotations

import pandas as pd
import pytest

from model import stats_cache
from model import trace_stats as ts
from model.config import get_config
from model.trace import build_trace


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(stats_cache.ENV_DIR, str(tmp_path / "cache"))
    monkeypatch.delenv(stats_cache.ENV_OFF, raising=False)
    stats_cache.clear_memo()
    yield tmp_path / "cache"
    stats_cache.clear_memo()


@pytest.fixture
def measured(monkeypatch):
    """Counts the random-weight measurements actually run."""
    calls = []
    real = ts.measure_stats

    def counting(*args, **kw):
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(ts, "measure_stats", counting)
    return calls


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.attrs == b.attrs


@pytest.mark.parametrize("preset, datapath, kw", [
    ("tiny", "a4.8", dict(phase="prefill", context=24, batch=2)),
    ("tiny", "b1.58", dict(seed=5, layers_measured=2)),
    (get_config("tiny", "a4.8", q_bits=4, lm_head_bits=8), "a4.8", dict(context=33)),
])
def test_cached_and_freshly_built_traces_are_identical(cache, monkeypatch, measured, preset, datapath, kw):
    monkeypatch.setenv(stats_cache.ENV_OFF, "1")
    fresh = build_trace(preset, datapath, **kw)
    assert not cache.exists()                                    # BITSIM_NO_CACHE=1 writes nothing
    monkeypatch.delenv(stats_cache.ENV_OFF)
    cold = build_trace(preset, datapath, **kw)                   # measures and writes
    assert len(list(cache.rglob("*.json"))) == 1
    memo = build_trace(preset, datapath, **kw)                   # from this process's memo
    stats_cache.clear_memo()
    disk = build_trace(preset, datapath, **kw)                   # from the file
    assert len(measured) == 2                                    # the uncached one and the cold one
    for t in (cold, memo, disk):
        _same(fresh, t)


def test_a_table2_trace_reuses_the_measurement_of_its_random_trace(cache, measured):
    build_trace("700m", "a4.8", context=64)
    paper = build_trace("700m", "a4.8", context=64, profile="paper-table2")
    assert len(measured) == 1 and paper.attrs["stats_source"] == "paper-table2"
    up = paper[paper.op == "up_proj"].iloc[0]
    assert up.sparsity == pytest.approx(0.662)                   # the paper's number, not the random one


def test_every_input_of_the_measurement_is_part_of_the_key(cache, measured):
    base = dict(context=16, batch=1, seed=0)
    build_trace("tiny", "a4.8", **base)
    build_trace(get_config("tiny", "a4.8", norm_eps=1e-6), "a4.8", **base)     # a config field
    build_trace("tiny", "a4.8", **{**base, "seed": 1})
    build_trace("tiny", "a4.8", **{**base, "context": 17})
    build_trace("tiny", "a4.8", **{**base, "batch": 2})
    build_trace("tiny", "b1.58", **base)
    assert len(measured) == 6 and len(list(cache.rglob("*.json"))) == 6


def test_a_damaged_or_foreign_cache_file_is_measured_again(cache, measured):
    first = build_trace("tiny", "b1.58", context=12)
    (entry,) = cache.rglob("*.json")
    for text in ("{not json", '{"key": "someone else", "value": {}}', "[1, 2]"):
        entry.write_text(text)
        stats_cache.clear_memo()
        _same(first, build_trace("tiny", "b1.58", context=12))
    assert len(measured) == 4


def test_an_unwritable_cache_folder_still_gives_the_trace(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(stats_cache.ENV_DIR, str(blocker / "cache"))
    stats_cache.clear_memo()
    df = build_trace("tiny", "fp16", context=8)
    assert len(df) and not (blocker / "cache").exists()
    stats_cache.clear_memo()


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(stats_cache.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert stats_cache.cache_dir() == tmp_path / "xdg" / "bitsim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert stats_cache.cache_dir() == tmp_path / "home" / ".cache" / "bitsim"
    monkeypatch.setenv(stats_cache.ENV_DIR, str(tmp_path / "mine"))
    assert stats_cache.cache_dir() == tmp_path / "mine"
    for off, on in (("1", False), ("0", True), ("", True)):
        monkeypatch.setenv(stats_cache.ENV_OFF, off)
        assert stats_cache.enabled() is on


def test_an_edit_of_the_measuring_code_measures_again(cache, measured, monkeypatch):
    build_trace("tiny", "a4.8", context=16)
    build_trace("tiny", "a4.8", context=16)
    monkeypatch.setattr(ts, "_measuring_code_digest", lambda: "another source")
    build_trace("tiny", "a4.8", context=16)
    assert len(measured) == 2


def test_traces_of_one_model_share_its_random_block_and_stay_identical(monkeypatch):
    monkeypatch.setenv(stats_cache.ENV_OFF, "1")
    inits = []
    real = ts.init_weights
    monkeypatch.setattr(ts, "init_weights", lambda *a: (inits.append(a[1]), real(*a)))
    ts.random_block.cache_clear()
    first = build_trace("tiny", "a4.8", context=12)
    shared = build_trace("tiny", "a4.8", context=20, batch=2)
    assert inits == [1]                                        # one block (seed 0, layer 0) for both
    ts.random_block.cache_clear()
    _same(shared, build_trace("tiny", "a4.8", context=20, batch=2))
    _same(first, build_trace("tiny", "a4.8", context=12))
    assert inits == [1, 1]
