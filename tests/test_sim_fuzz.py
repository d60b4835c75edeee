"""Seeded fuzz of the simulator's two file readers: the accelerator YAML loader and the trace reader.

Random mutations of valid files (cut, duplicated or swapped lines, odd values, aliases, bytes
flipped, truncation).  Every outcome must be a clear ``ValueError`` / ``FileNotFoundError`` (a
short message, no other exception type) or a correct result (it loads, and simulating with it
gives a finite latency or a clear ``ValueError``), each case within a time bound.
"""
from __future__ import annotations

import math
import random
import time

import pandas as pd
import pytest
from test_sim_synthetic import decoder_trace

import sim
from contract import write_table
from sim.config import PRESET_DIR, PRESETS

CASES = 120                 # per reader and seed
CASE_SECONDS = 2.0          # bound on one load (+ simulation of a small trace)
MAX_MESSAGE = 1200          # characters of an error message

ODD_VALUES = ["-1", "0", "1e12", "1e-12", "1e400", ".nan", ".inf", "-.inf", "x", "''", "[]", "{}", "null",
              "true", "2e3", "1000000000000", "*missing", "&a 4", "!!python/object:os.system 'ls'",
              "\"\\u0000\"", "0x10", "1_000", "'9' ", "[1, [2, [3]]]"]


def _check_outcome(fn, *args):
    """Run ``fn``; return the result, or None after a clear error; fail on anything else or on slowness."""
    t0 = time.perf_counter()
    try:
        out = fn(*args)
    except (ValueError, FileNotFoundError) as e:
        msg = str(e)
        assert msg and len(msg) <= MAX_MESSAGE, (type(e).__name__, len(msg), msg[:300])
        assert "Traceback" not in msg
        out = None
    assert time.perf_counter() - t0 < CASE_SECONDS, f"{fn.__name__} took {time.perf_counter() - t0:.1f} s"
    return out


# ---------------------------------------------------------------------------------------- YAML
def _mutate_yaml(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    kind = rng.randrange(8)
    i = rng.randrange(len(lines))
    if kind == 0:                                   # drop a line
        del lines[i]
    elif kind == 1:                                 # duplicate a line (often a duplicate key)
        lines.insert(i, lines[i])
    elif kind == 2:                                 # swap two lines (breaks nesting)
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 3:                                 # replace a value with an odd one
        cand = [k for k, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
        k = rng.choice(cand)
        key = lines[k].split(":", 1)[0]
        lines[k] = f"{key}: {rng.choice(ODD_VALUES)}"
    elif kind == 4:                                 # change indentation
        lines[i] = " " * rng.randrange(0, 7) + lines[i].lstrip()
    elif kind == 5:                                 # truncate the file
        return text[: rng.randrange(len(text))]
    elif kind == 6:                                 # flip characters
        chars = list(text)
        for _ in range(rng.randrange(1, 6)):
            chars[rng.randrange(len(chars))] = rng.choice("{}[]:&*!|>-'\"\t\x00é# ")
        return "".join(chars)
    else:                                           # an alias fan-out prepended
        n = rng.randrange(2, 12)
        bomb = ["z0: &z0 [q, q, q, q, q, q, q, q]"] + [
            f"z{k}: &z{k} [" + ", ".join([f"*z{k - 1}"] * 8) + "]" for k in range(1, n)]
        lines = bomb + lines
    return "\n".join(lines) + "\n"


def _load_and_run(path):
    cfg = sim.load_accelerator(path)
    assert isinstance(cfg, sim.AcceleratorConfig)
    try:
        res = sim.simulate(decoder_trace("b1.58", layers=1, hidden=256, ffn=512, heads=2, vocab=512), cfg)
    except ValueError:                  # e.g. a mutated config that cannot run this trace: a clear error
        return cfg
    assert math.isfinite(res.summary.latency_s) and res.summary.latency_s > 0
    assert math.isfinite(res.summary.energy_j) and res.summary.energy_j >= 0
    return cfg


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_accelerator_yaml_gives_a_clear_error_or_a_working_config(tmp_path, seed):
    rng = random.Random(seed)
    texts = [(PRESET_DIR / PRESETS[n]).read_text() for n in ("b1.58", "a4.8", "h100-triton")]
    outcomes = {"loaded": 0, "refused": 0}
    for k in range(CASES):
        text = _mutate_yaml(rng.choice(texts), rng)
        if rng.random() < 0.3:
            text = _mutate_yaml(text, rng)          # two mutations
        p = tmp_path / f"m{k}.yaml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        outcomes["loaded" if _check_outcome(_load_and_run, p) is not None else "refused"] += 1
    # the fuzz exercises both outcomes (a mutation of a comment or a harmless value still loads)
    assert outcomes["loaded"] > 0 and outcomes["refused"] > CASES // 3, outcomes


def test_missing_accelerator_file_is_a_clear_error(tmp_path):
    assert _check_outcome(sim.load_accelerator, tmp_path / "nope.yaml") is None


# ---------------------------------------------------------------------------------------- traces
def _small_trace() -> pd.DataFrame:
    return decoder_trace("a4.8", layers=1, hidden=256, ffn=512, heads=2, vocab=512, context=64)


ODD_META = ["{", "-5", "1e999", "[1]", "null", "bogus", '"prefill"', "0", "1.5", '{"a": 1}']
ODD_CELLS = ["-1", "", "nan", "inf", "1e400", "abc", "99999999999999999999999", "1.5", "0", "train", "none",
             "kv-int2", "-0", "1e15", "True", "\"", "1,2"]


def _mutate_csv(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    head = sum(ln.startswith("# ") for ln in lines)
    kind = rng.randrange(6)
    if kind == 0:                                   # odd cell values
        for _ in range(rng.randrange(1, 4)):
            r = rng.randrange(head + 1, len(lines))
            cells = lines[r].split(",")
            cells[rng.randrange(len(cells))] = rng.choice(ODD_CELLS)
            lines[r] = ",".join(cells)
    elif kind == 1:                                 # break the metadata (JSON after "# key: ")
        r = rng.randrange(head)
        key = lines[r][2:].split(":", 1)[0]
        lines[r] = f"# {key}: {rng.choice(ODD_META)}"
    elif kind == 2:                                 # drop or duplicate lines (the header among them)
        r = rng.randrange(len(lines))
        if rng.random() < 0.5:
            del lines[r]
        else:
            lines.insert(r, lines[r])
    elif kind == 3:                                 # drop a column everywhere
        c = rng.randrange(len(lines[head].split(",")))
        lines[head:] = [",".join(x for j, x in enumerate(ln.split(",")) if j != c) for ln in lines[head:]]
    elif kind == 4:                                 # truncate
        return text[: rng.randrange(len(text))]
    else:                                           # random bytes as text
        chars = list(text)
        for _ in range(rng.randrange(1, 8)):
            chars[rng.randrange(len(chars))] = rng.choice(",\n\"#\x00é;")
        return "".join(chars)
    return "\n".join(lines) + "\n"


def _mutate_parquet(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    if rng.random() < 0.4:
        return bytes(b[: rng.randrange(len(b))])
    for _ in range(rng.randrange(1, 16)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _read_and_run(path):
    tr = sim.load_trace(path)
    try:
        res = sim.simulate(tr, "a4.8")
    except ValueError:                  # e.g. an op the accelerator cannot run: a clear error
        return tr
    assert len(res.ops) == len(tr)
    assert math.isfinite(res.summary.latency_s) and res.summary.latency_s > 0
    return tr


@pytest.mark.parametrize("seed", [0, 1])
def test_mutated_trace_files_give_a_clear_error_or_a_correct_result(tmp_path, seed):
    rng = random.Random(seed)
    csv, pq = tmp_path / "base.csv", tmp_path / "base.parquet"
    write_table(_small_trace(), csv, "op_trace")
    write_table(_small_trace(), pq, "op_trace")
    assert _check_outcome(_read_and_run, csv) is not None and _check_outcome(_read_and_run, pq) is not None
    text, data = csv.read_text(), pq.read_bytes()
    outcomes = {"read": 0, "refused": 0}
    for k in range(CASES):
        if k % 3:
            p = tmp_path / f"m{k}.csv"
            p.write_text(_mutate_csv(text, rng), encoding="utf-8", errors="surrogatepass")
        else:
            p = tmp_path / f"m{k}.parquet"
            p.write_bytes(_mutate_parquet(data, rng))
        outcomes["read" if _check_outcome(_read_and_run, p) is not None else "refused"] += 1
    assert outcomes["refused"] > CASES // 3, outcomes
