"""floor_read reads every word once, floor_reread every word once per program: their sums equal the references'."""

import pytest
import torch

from kernels.floor import floor_read, floor_read_reference, floor_reread, floor_reread_reference

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def test_floor_read_sums_every_word_of_a_ragged_buffer():
    src = torch.randint(-2 ** 31, 2 ** 31 - 1, (1000,), dtype=torch.int32, generator=torch.Generator().manual_seed(1))
    out = floor_read(src.to(DEV), block=256)
    assert out.shape == (4,) and torch.equal(out.cpu(), floor_read_reference(src, block=256))


def test_floor_read_refuses_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        floor_read(torch.zeros(64, dtype=torch.int32, device=DEV), block=100)
    with pytest.raises(TypeError, match="src must have dtype"):
        floor_read(torch.zeros(64, device=DEV))
    with pytest.raises(ValueError, match="out must be"):
        floor_read(torch.zeros(64, dtype=torch.int32, device=DEV), torch.zeros(1, device=DEV), block=16)


def test_floor_reread_every_program_sums_all_of_a_ragged_buffer():
    g = torch.Generator().manual_seed(3)
    src = torch.randint(-2 ** 31, 2 ** 31 - 1, (1000,), dtype=torch.int32, generator=g)
    out = floor_reread(src.to(DEV), programs=5, block=256)
    expect = floor_reread_reference(src, 5)
    assert out.shape == (5,) and torch.equal(out.cpu(), expect)
    wrapped = (int(src.to(torch.int64).sum()) + 2 ** 31) % 2 ** 32 - 2 ** 31   # independent of the reference
    assert int(expect[0]) == wrapped


def test_floor_reread_refuses_bad_arguments():
    src = torch.zeros(64, dtype=torch.int32, device=DEV)
    with pytest.raises(ValueError, match="programs"):
        floor_reread(src, programs=0)
    with pytest.raises(ValueError, match="block"):
        floor_reread(src, programs=2, block=48)
    with pytest.raises(ValueError, match="out"):
        floor_reread(src, programs=4, out=torch.zeros(2, dtype=torch.int32, device=DEV))
