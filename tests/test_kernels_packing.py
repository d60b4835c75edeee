"""Bit layouts of kernels/packing.py: exact round trips and hand-checked bit positions."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kernels.packing import (  # noqa: E402
    PACK_GROUP,
    pack_int4,
    pack_planes,
    pack_ternary,
    padded_len,
    unpack_int4,
    unpack_planes,
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


def test_int4_round_trip_and_nibble_order():
    codes = torch.tensor([[-8, 7, 0, -1, 3, -5]], dtype=torch.int8)
    packed = pack_int4(codes)
    assert packed.tolist() == [[0x78, 0xF0, 0xB3]]                 # element 2t low nibble, 2t+1 high
    g = torch.Generator().manual_seed(1)
    big = torch.randint(-8, 8, (4, 6, 10), generator=g, dtype=torch.int8)
    assert torch.equal(unpack_int4(pack_int4(big)), big)


@pytest.mark.parametrize("bits", [3, 4])
def test_bit_planes_round_trip(bits):
    g = torch.Generator().manual_seed(bits)
    codes = torch.randint(0, 2 ** bits, (2, 3, 64), generator=g, dtype=torch.int8)
    planes = pack_planes(codes, bits)
    assert planes.shape == (2, 3, bits, 2)
    assert torch.equal(unpack_planes(planes), codes)


def test_pack_rejects_out_of_range_and_bad_types():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        pack_ternary(torch.tensor([[2, 0]], dtype=torch.int8))
    with pytest.raises(TypeError, match="integer"):
        pack_ternary(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="2-D"):
        pack_ternary(torch.zeros(4, dtype=torch.int8))
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(1, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([[8, 0]], dtype=torch.int8))
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_planes(torch.zeros(1, 48, dtype=torch.int8), 3)
    with pytest.raises(ValueError, match="does not match"):
        unpack_ternary(pack_ternary(torch.zeros(1, 200, dtype=torch.int8)), 100)
