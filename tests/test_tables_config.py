"""The one strict YAML loader and field check (contract.config) against hand-made bad inputs."""
import time
from dataclasses import dataclass

import pytest

from contract.config import MAX_QUOTE, MAX_YAML_BYTES, check_fields, dataclass_fields, load_yaml, parse_yaml, quote


def test_numbers_follow_yaml_1_2():
    got = parse_yaml("a: 2e3\nb: 1E-5\nc: 7\nd: 1.5\ne: '2e3'\nf: -3e+2")
    assert got == {"a": 2000.0, "b": 1e-5, "c": 7, "d": 1.5, "e": "2e3", "f": -300.0}
    assert isinstance(got["c"], int) and isinstance(got["a"], float)


def test_duplicate_key_names_both_lines():
    with pytest.raises(ValueError, match=r"line 3.*duplicate key 'x' \(first given on line 1\)"):
        parse_yaml("x: 1\ny: 2\nx: 3\n", where="f.yaml")


def test_python_tags_are_refused():
    with pytest.raises(ValueError, match="could not determine a constructor"):
        parse_yaml("a: !!python/object/apply:os.system ['true']")


def _bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly_with_a_short_message():
    text = _bomb()
    assert len(text) < 4000                     # 3 KB that would expand to 10^9 strings
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="alias bomb") as e:
        parse_yaml(text)
    assert time.perf_counter() - t0 < 2.0
    assert len(str(e.value)) < 4 * MAX_QUOTE


def test_small_aliases_still_work():
    got = parse_yaml("base: &b {rows: 4}\na: *b\nb: *b\n")
    assert got["a"] == got["b"] == {"rows": 4}


def test_oversized_file_is_refused_before_parsing(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * (MAX_YAML_BYTES + 1))
    with pytest.raises(ValueError, match="larger than"):
        load_yaml(p)


def test_missing_file_and_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="is a folder"):
        load_yaml(tmp_path)


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(ValueError, match=r"cfg: unknown field\(s\) \['colz'\]; known: \['cols', 'rows'\]"):
        check_fields({"rows": 1, "colz": 2}, ["rows", "cols"], "cfg")

    @dataclass
    class C:
        a: int
        b: int = 0

    with pytest.raises(ValueError, match=r"missing field\(s\) \['a'\]"):
        dataclass_fields({"b": 1}, C, "c")
    assert dataclass_fields({"a": 1}, C, "c") == {"a": 1}
    with pytest.raises(ValueError, match="expected a mapping"):
        check_fields([1, 2], ["a"], "cfg")


def test_quote_cuts_long_values():
    assert quote("abc") == "'abc'"
    long = quote("x" * 10_000)
    assert len(long) <= MAX_QUOTE and long.endswith("(10002 chars)")


def test_control_characters_are_a_clear_error():
    with pytest.raises(ValueError, match="invalid YAML"):
        parse_yaml("a: \x00")


@pytest.mark.parametrize("value, kw, message", [
    (True, {}, "expected a number, got True"),
    ("3", {}, "expected a number, got '3'"),
    (float("nan"), {}, "expected a finite number"),
    (float("inf"), {"hi": 1e30}, "expected a finite number"),
    (2.0, {"integer": True}, "expected an integer, got 2.0"),
    (0, {"lo": 0, "lo_open": True}, r"outside \(0, inf\]"),
    (11, {"hi": 10, "unit": "GHz"}, r"outside \[-inf, 10\] GHz"),
    (-1, {"integer": True, "lo": 0}, r"outside \[0, inf\]"),
])
def test_check_number_refuses_bools_strings_nonfinite_and_out_of_range_naming_the_field(value, kw, message):
    from contract.config import check_number
    with pytest.raises(ValueError, match=rf"^clock_ghz.*{message}"):
        check_number(value, "clock_ghz", **kw)


def test_check_number_returns_plain_int_or_float_within_range():
    import numpy as np

    from contract.config import check_number
    assert check_number(np.int64(7), "n", integer=True, lo=1, hi=7) == 7
    assert type(check_number(np.int64(7), "n", integer=True)) is int
    assert check_number(3, "x", lo=0, lo_open=True) == 3.0 and type(check_number(3, "x")) is float
