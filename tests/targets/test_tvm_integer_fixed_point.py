"""Fixed-point requantization: the constants against exact rational arithmetic, and the TVM kernel bit for bit."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mobilevit_deploy.targets.tvm_integer.fixed_point import (
    fixed_point_multiplier,
    make_requantizer,
    requantize_reference,
)


def test_multiplier_has_31_bits_and_tiny_error() -> None:
    real = np.array([0.9999, 0.5, 0.0173, 3.2e-4, 1.7, 123.0])
    m, shift = fixed_point_multiplier(real)
    assert np.all((m >= 2**30) & (m <= 2**31))
    assert np.abs(np.ldexp(m.astype(np.float64), -shift) / real - 1).max() < 2**-30


def test_tiny_multipliers_hit_the_shift_cap_with_negligible_absolute_error() -> None:
    real = np.array([1e-9, 0.0])
    m, shift = fixed_point_multiplier(real)
    assert shift.max() == 47 and m[1] == 0
    assert abs(float(m[0]) / 2**47 - 1e-9) * 2**31 < 2**-16  # error on the largest int32 accumulator


def test_huge_or_negative_multipliers_are_refused() -> None:
    with pytest.raises(ValueError, match="too large for 31-bit fixed point"):
        fixed_point_multiplier(np.array([2.0**31]))
    with pytest.raises(ValueError, match="finite and non-negative"):
        fixed_point_multiplier(np.array([-0.5]))


def test_requantization_matches_exact_rounding_within_one_step() -> None:
    """Against exact rationals rounded half to even (what a perfect float reference would do)."""
    rng = np.random.default_rng(0)
    channels = 8
    real = rng.uniform(1e-4, 0.05, channels)
    bias = rng.integers(-5000, 5000, channels)
    acc = rng.integers(-200_000, 200_000, (4, channels, 16, 16))
    rq = make_requantizer(real, bias, np.full(channels, 7), 0, 255, "uint8", np.full(channels, 2.0**20))
    got = requantize_reference(acc, rq, channel_axis=1).astype(np.int64)
    exact = np.empty_like(got)
    for c in range(channels):
        mult = Fraction(float(real[c]))
        column = [min(max(round((int(a) + int(bias[c])) * mult) + 7, 0), 255) for a in acc[:, c].ravel()]
        exact[:, c] = np.reshape(column, exact[:, c].shape)
    diff = np.abs(got - exact)
    assert diff.max() <= 1
    assert (diff == 0).mean() >= 0.9999  # only near-exact halves can differ


def test_overflow_is_refused() -> None:
    with pytest.raises(ValueError, match="overflow int64"):
        make_requantizer(np.array([0.9]), np.array([2**31 - 1]), np.array([0]), -128, 127, "int8",
                         np.array([2.0**31]))


def test_tvm_requantize_kernel_is_bit_exact() -> None:
    """The TE kernel the rewrite emits computes exactly ``requantize_reference``, per channel and per tensor."""
    import tvm
    from tvm import relax

    from mobilevit_deploy.targets.tvm_integer import kernels

    rng = np.random.default_rng(1)
    acc = rng.integers(-(2**24), 2**24, (1, 6, 5, 7)).astype(np.int32)
    rq = make_requantizer(rng.uniform(1e-6, 1e-3, 6), rng.integers(-9000, 9000, 6), np.full(6, -3), -128, 100,
                          "int8", np.full(6, 2.0**24))
    bb = relax.BlockBuilder()
    x = relax.Var("acc", relax.TensorType(acc.shape, "int32"))
    with bb.function("main", [x]):
        consts = [relax.const(v.astype(np.int64), "int64") for v in (rq.multiplier, rq.addend, rq.shift)]
        out = bb.emit_te(kernels.requantize, x, *consts, 1, rq.qmin, rq.qmax, rq.dtype)
        bb.emit_func_output(out)
    vm = relax.VirtualMachine(tvm.compile(bb.get(), "llvm"), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(acc)).numpy()
    np.testing.assert_array_equal(got, requantize_reference(acc, rq, channel_axis=1))
    assert got.min() >= -128 and got.max() <= 100
