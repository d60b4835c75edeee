"""floor_read reads every word once: its per-program sums equal the reference's."""

import pytest
import torch

from kernels.floor import floor_read, floor_read_reference

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
