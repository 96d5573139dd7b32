"""Shift-exp: hand-worked integers, bit-exact agreement with the float64 official algorithm, its error bound."""

from __future__ import annotations

import math

import pytest
import torch

from mobilevit_deploy.quant import QuantConfigError
from mobilevit_deploy.quant.ivit import exp_x0, shift_exp
from support import ivit_emulation as emu


def test_hand_computed_values() -> None:
    """x0 = −10 (scale 0.1), n = 4: e^0 is |x0|·2^n = 160, outputs are in units of 0.1/16.

    x = 0:    0 + 0 − 0 = 0;            q = 0, r = 0;   (0 − 2·−10) = 20 → 20·2^(4−0−1) = 160
    x = −7:   −7 + (−4) − (−1) = −10;   q = 1, r = 0;   20 → 20·2^(4−1−1) = 80    (e^−0.7 ≈ 0.50 ≈ 80/160)
    x = −3:   −3 + (−2) − (−1) = −4;    q = 0, r = −4;  16 → 16·2^3 = 128         (e^−0.3 ≈ 0.74, 128/160 = 0.8)
    x = −5:   −5 + (−3) − (−1) = −7;    q = 0, r = −7;  13 → 13·2^3 = 104         (r odd: TVM's (r>>1) form gives 96)
    x = −100: −100 + (−50) − (−7) = −143, clipped to n·x0 = −40; q = 4, r = 0; 20 → 20 >> 1 = 10 (2^−4 · 160)
    x = −15:  −15 + (−8) − (−1) = −22;  q = 2, r = −2;  18 → 18·2^1 = 36
    """
    x = torch.tensor([0, -7, -3, -5, -100, -15])
    assert shift_exp(x, -10, 4).tolist() == [160, 80, 128, 104, 10, 36]


def test_x0_is_the_floor_of_minus_one_over_the_scale() -> None:
    assert exp_x0(0.1) == -10 and exp_x0(0.3) == -4 and exp_x0(1.5) == -1 and exp_x0(0.05) == -20


@pytest.mark.parametrize(("scale", "n"), [(0.05, 15), (0.013, 16), (0.11, 23), (0.0071, 15)])
def test_bit_exact_with_the_float64_official_algorithm(scale: float, n: int) -> None:
    gen = torch.Generator().manual_seed(n)
    x = torch.randint(-int(30 / scale), 1, (20000,), generator=gen)  # down to e^−30, well past the clip at −n
    ours = shift_exp(x, exp_x0(scale), n)
    assert torch.equal(ours, emu.shift_exp(x, scale, n, torch.float64).to(torch.int64))


def test_approximation_error_against_exp() -> None:
    """An approximation by design. 2^f ≈ 1 + f/2 on [−1, 0] overestimates by up to 6.15 %, and log2 e ≈ 1.4375
    (not 1.4427) overestimates e^x by 2^(0.0052·|x|), 1.8 % at x = −5: together at most 8.1 % on [−5, 0]."""
    scale, n = 0.001, 15
    x = torch.arange(-5000, 1)
    approx = shift_exp(x, exp_x0(scale), n).double() / (-exp_x0(scale) * 2**n)
    rel = ((approx - torch.exp(x.double() * scale)) / torch.exp(x.double() * scale)).abs().max()
    assert 0.075 < float(rel) <= 0.081


def test_positive_inputs_need_saturation() -> None:
    """ShiftGELU's e^(−x_max) has a positive input when a row is all negative: capped at 2^31 − 1 on request."""
    with pytest.raises(ValueError, match="x ≤ 0"):
        shift_exp(torch.tensor([3]), -10, 4)
    # x = 3: 3 + 1 − 0 = 4, q = ⌊4/−10⌋ = −1, r = −6, (−6 + 20) = 14 → 14·2^(4+1−1) = 224 (e^0.3 · 160 ≈ 216)
    # x = 10^6: the exact value has ~1.4·10^5 bits; it saturates
    assert shift_exp(torch.tensor([3, 10**6]), -10, 4, saturate=True).tolist() == [224, 2**31 - 1]


def test_parameters_that_overflow_int32_are_refused() -> None:
    with pytest.raises(QuantConfigError, match=r"\|x0\| · 2\^n = 300 · 2\^23 does not fit int32") as err:
        shift_exp(torch.tensor([0]), -300, 23)
    assert err.value.hint == "use n ≤ 21 or a coarser input scale"
    with pytest.raises(QuantConfigError, match="x0 must be a negative int"):
        shift_exp(torch.tensor([0]), 5, 4)
    with pytest.raises(TypeError, match=r"must be an integer tensor, got torch\.float32"):
        shift_exp(torch.tensor([0.0]), -10, 4)
    with pytest.raises(QuantConfigError, match="positive finite input scale"):
        exp_x0(-0.1)
    assert math.floor(-1 / 0.0071) == exp_x0(0.0071)
