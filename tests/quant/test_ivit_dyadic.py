"""Dyadic requantization: the official frexp multipliers, hand-worked rounding, and exactness past 2^53 where the
official float64 product drifts (checked against Python's unbounded integers)."""

from __future__ import annotations

import random

import pytest
import torch

from mobilevit_deploy.quant import QuantConfigError
from mobilevit_deploy.quant.ivit import dyadic_from_ratio, requantize, requantize_add
from mobilevit_deploy.quant.ivit.dyadic import Dyadic
from support import ivit_emulation as emu


def _exact(z: int, m: int, k: int) -> int:
    """round(z·m / 2^k), ties to even, in Python integers (no precision limit)."""
    q, rem = divmod(z * m, 1 << k)
    half = 1 << (k - 1)
    return q + (rem > half or (rem == half and q % 2 == 1))


def test_multiplier_by_hand() -> None:
    """0.3 = 0.6 · 2^−1: m = round_half_up(0.6 · 2^31) = round(1288490188.8) = 1288490189, k = 31 + 1 = 32.
    0.5 = 0.5 · 2^0: m = 2^30, k = 31.  1 − 2^−40 rounds its mantissa up to 2^31: stored as 2^30 with k = 30."""
    d = dyadic_from_ratio(0.3)
    assert (int(d.m), int(d.k)) == (1288490189, 32) == emu.frexp_dyadic(0.3)
    assert (int(dyadic_from_ratio(0.5).m), int(dyadic_from_ratio(0.5).k)) == (2**30, 31)
    assert (int(dyadic_from_ratio(1 - 2**-40).m), int(dyadic_from_ratio(1 - 2**-40).k)) == (2**30, 30)
    per_channel = dyadic_from_ratio(torch.tensor([0.3, 0.5, 1e-4], dtype=torch.float64))
    assert per_channel.m.shape == (3,) and per_channel.m.dtype == torch.int64
    assert torch.allclose(per_channel.value(), torch.tensor([0.3, 0.5, 1e-4], dtype=torch.float64), rtol=1e-9)


def test_rounding_and_clamping_by_hand() -> None:
    d = dyadic_from_ratio(0.3)
    # 100 · 1288490189 / 2^32 = 30.0000000014 → 30;  5 → 1.50000000023 → 2 (not a tie);  ±1000 → ±300 → clamp
    assert requantize(torch.tensor([100, 5, 1000, -1000]), d).tolist() == [30, 2, 127, -128]
    half = dyadic_from_ratio(0.5)
    # exact ties: 3/2 = 1.5, 5/2 = 2.5, −3/2 = −1.5
    assert requantize(torch.tensor([3, 5, -3]), half).tolist() == [2, 2, -2]  # to even, as torch.round
    assert requantize(torch.tensor([3, 5, -3]), half, rounding="half_up").tolist() == [2, 3, -1]
    assert requantize(torch.tensor([3]), half).dtype == torch.int8
    assert requantize(torch.tensor([70000]), half, bits=16).tolist() == [32767]


def test_residual_add_by_hand() -> None:
    """Each branch is rescaled to the output scale on its own and the two are added before one clamp:
    a = 7 at ratio 0.5 → round(3.5) = 4;  b = 10 at ratio 0.3 → 3;  4 + 3 = 7."""
    out = requantize_add(torch.tensor([7, 200000]), dyadic_from_ratio(0.5), torch.tensor([10, 10]),
                         dyadic_from_ratio(0.3))
    assert out.tolist() == [7, 32767] and out.dtype == torch.int16


def test_bit_exact_with_the_official_float64_product_below_2_pow_53() -> None:
    gen = torch.Generator().manual_seed(0)
    for ratio in (0.0123, 3.7e-4, 0.9999, 1.7, 2.3e-7):
        z = torch.randint(-2**20, 2**20, (20000,), generator=gen)
        d = dyadic_from_ratio(ratio)
        assert int(z.abs().max()) * int(d.m) < 2**53
        assert torch.equal(requantize(z, d, bits=16).to(torch.int64),
                           emu.fixedpoint_mul(z, ratio, 16).to(torch.int64))


def test_exact_past_2_pow_53_where_float64_drifts() -> None:
    """int32 inputs times 31-bit multipliers reach 2^62. Ours equals exact integer rounding everywhere (random z
    and z built to sit within ±100 of a rounding tie: z·m ≡ 2^(k−1) + δ mod 2^k); the official float64 product
    keeps 53 bits, lands on the tie itself, and rounds to even — the wrong way for some of them."""
    rng = random.Random(0)
    drifted = 0
    for _ in range(100):
        m, k = rng.randrange(2**30, 2**31) | 1, rng.randrange(20, 31)
        zs = [rng.randrange(-(2**31), 2**31) for _ in range(20)]
        for _ in range(20):
            base = ((1 << (k - 1)) + rng.randrange(-100, 101)) * pow(m, -1, 1 << k) % (1 << k)
            zs.append(base + (rng.randrange((2**31 - base) >> k) << k))  # same residue, product up to 2^62
        z = torch.tensor(zs)
        ours = requantize(z, Dyadic(torch.tensor(m), torch.tensor(k)), bits=32).tolist()
        assert ours == [max(-(2**31), min(2**31 - 1, _exact(v, m, k))) for v in zs]
        official = torch.round(z.double() * float(m) / 2.0**k).clamp(-(2**31), 2**31 - 1).to(torch.int64)
        drifted += int((official != torch.tensor(ours)).sum())
    assert drifted > 0


def test_bad_ratios_and_inputs_are_refused() -> None:
    with pytest.raises(QuantConfigError, match="positive finite scale ratio"):
        dyadic_from_ratio(0.0)
    with pytest.raises(QuantConfigError, match="needs a shift of 72") as err:
        dyadic_from_ratio(2.0**-42)
    assert "too far apart" in err.value.hint
    with pytest.raises(TypeError, match="integer tensor"):
        requantize(torch.tensor([1.5]), dyadic_from_ratio(0.5))
    with pytest.raises(OverflowError, match="below 2\\^32"):
        requantize(torch.tensor([2**33]), dyadic_from_ratio(0.5))
    with pytest.raises(ValueError, match="rounding must be one of"):
        requantize(torch.tensor([1]), dyadic_from_ratio(0.5), rounding="nearest")
