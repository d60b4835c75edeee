"""Inputs are bounded and special files refused; published folders are readable (contract.io)."""
from __future__ import annotations

import os
import stat

import pytest

from contract.config import load_yaml
from contract.io import check_input_file, parse_json, read_bounded, read_json, temporary_sibling

KW = dict(what="file", expected="a YAML file", max_bytes=1000, why="a config is small")


def test_a_device_that_reports_size_zero_is_refused_before_reading():
    with pytest.raises(ValueError, match="not a regular file"):
        check_input_file("/dev/zero", **KW)
    with pytest.raises(ValueError, match="not a regular file"):
        load_yaml("/dev/zero")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "accel.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_bounded(fifo, **KW)


def test_a_symlink_to_itself_is_a_clear_missing_file_error(tmp_path):
    loop = tmp_path / "ck.pt"
    loop.symlink_to(loop)
    with pytest.raises(FileNotFoundError, match="symlink loop"):
        check_input_file(loop, **KW)


def test_read_bounded_cuts_off_at_the_bound_even_if_the_file_grew(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"a" * 1000)
    assert read_bounded(p, **KW) == b"a" * 1000
    p.write_bytes(b"a" * 1001)
    with pytest.raises(ValueError, match="larger than 1,000"):
        read_bounded(p, **KW)


def test_deeply_nested_json_is_a_value_error_not_a_recursion_error(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="nested deeper than 64"):
        parse_json(deep, where="_spec.json")
    p = tmp_path / "_spec.json"
    p.write_text('{"a": "[[[[not nesting inside a string", "b": [[1]]}')
    assert read_json(p, what="sweep spec") == {"a": "[[[[not nesting inside a string", "b": [[1]]}
    p.write_text("{broken")
    with pytest.raises(ValueError, match="sweep spec .*invalid JSON"):
        read_json(p, what="sweep spec")


def test_a_published_folder_is_readable_by_others(tmp_path):
    tmp = temporary_sibling(tmp_path / "report")
    mode = stat.S_IMODE(tmp.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask   # not mkdtemp's private 0700


def test_an_output_that_is_a_symlink_loop_or_dangling_link_is_refused_without_force(tmp_path):
    from contract.io import check_output
    loop = tmp_path / "out.parquet"
    loop.symlink_to(loop)
    with pytest.raises(ValueError, match="exists; pass --force"):
        check_output(loop)
    with pytest.raises(ValueError, match="symlink loop"):
        check_output(tmp_path / "other.parquet", inputs=[loop])
    dangling = tmp_path / "d.parquet"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="exists; pass --force"):
        check_output(dangling)


def test_files_digest_is_the_sha256_of_the_prefix_then_each_file_in_order(tmp_path):
    import hashlib

    from contract.io import files_digest
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    assert files_digest([a, b], prefix="v3|") == hashlib.sha256(b"v3|firstsecond").hexdigest()
    assert files_digest([b, a]) != files_digest([a, b])
    with pytest.raises(FileNotFoundError):
        files_digest([tmp_path / "absent"])
