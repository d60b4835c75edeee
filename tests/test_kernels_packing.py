"""Bit layouts of kernels/packing.py: exact round trips and hand-checked bit positions."""

import pytest
import torch

from kernels.packing import (
    PACK_GROUP,
    pack_ternary,
    padded_len,
    unpack_ternary,
)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 127), (5, 128), (2, 300)])
def test_ternary_round_trip_exact_for_ragged_widths(rows, cols):
    g = torch.Generator().manual_seed(rows * 1000 + cols)
    codes = torch.randint(-1, 2, (rows, cols), generator=g, dtype=torch.int8)
    packed = pack_ternary(codes)
    assert packed.dtype == torch.int32
    assert packed.shape == (rows, padded_len(cols) // 16)
    assert torch.equal(unpack_ternary(packed, cols), codes)


def test_ternary_bit_position_matches_documented_layout():
    # value k of a row sits in word k // 16 at bit 8*b + 2*i with k % 16 = 4*i + b, holding code + 1
    for k in (0, 1, 4, 5, 15, 16, 37):
        codes = torch.zeros(1, 64, dtype=torch.int8)
        codes[0, k] = 1                                    # field value 2 at that spot, 1 elsewhere
        w = pack_ternary(codes).to(torch.int64) & 0xFFFFFFFF
        i, b = (k % 16) // 4, (k % 16) % 4
        expect = torch.full((4,), 0x55555555, dtype=torch.int64)    # every field = 1 (code 0)
        expect[k // 16] += 1 << (8 * b + 2 * i)
        assert torch.equal(w[0, :4], expect)


def test_ternary_padding_is_code_zero():
    packed = pack_ternary(torch.ones(1, 3, dtype=torch.int8))
    full = unpack_ternary(packed, PACK_GROUP)
    assert torch.equal(full[0, 3:], torch.zeros(PACK_GROUP - 3, dtype=torch.int8))


def test_pack_rejects_out_of_range_and_bad_types():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        pack_ternary(torch.tensor([[2, 0]], dtype=torch.int8))
    with pytest.raises(TypeError, match="integer"):
        pack_ternary(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="2-D"):
        pack_ternary(torch.zeros(4, dtype=torch.int8))
    with pytest.raises(ValueError, match="does not match"):
        unpack_ternary(pack_ternary(torch.zeros(1, 200, dtype=torch.int8)), 100)
