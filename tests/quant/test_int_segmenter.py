"""The integer-only I-Segmenter built by PTQ: integer all the way through, close to its float model, one or 32
calibration images.

The float model is isegmenter_tiny with its seeded random initialisation (no trained checkpoint exists yet),
at 64×64 so a conversion takes seconds. Numbers measured when written (patch-level logits, 8 held-out random
images, SQNR / argmax agreement): 1 calibration image 18.7 dB / 81 %, 32 images 19.1 dB / 88 %; with λ-ShiftGELU
fitted per layer 19.3 dB / 88 % and 20.2 dB / 90 %.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mobilevit_deploy.models import create_model
from mobilevit_deploy.quant import QuantConfigError
from mobilevit_deploy.quant.int_segmenter import IntSegmenter, convert_segmenter
from mobilevit_deploy.quant.ivit.shiftgelu import LAMBDA_GRID

SIZE = 64


@pytest.fixture(scope="module")
def float_model() -> torch.nn.Module:
    return create_model("isegmenter_tiny")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(40, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def one_image(float_model: torch.nn.Module, images: torch.Tensor) -> IntSegmenter:
    return convert_segmenter(float_model, images[0])


def _sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.double().pow(2).sum() / (ref.double() - approx.double()).pow(2).sum()))


def _compare(float_model: torch.nn.Module, int_model: IntSegmenter, x: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        ref = float_model.forward_masks(x)
    out = int_model.forward_masks_int(int_model.quantize_input(x)).double() * int_model.output_scale
    return _sqnr_db(ref, out), float((ref.argmax(1) == out.argmax(1)).double().mean())


class _DtypeRecorder(TorchDispatchMode):
    """Every tensor that enters or leaves an ATen op while active."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, torch.dtype]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten((args, kwargs, out))[0]:
            if isinstance(t, torch.Tensor):
                self.seen.add((str(func), t.dtype))
        return out


def test_no_float_tensor_between_the_boundaries(one_image: IntSegmenter, images: torch.Tensor) -> None:
    x = one_image.quantize_input(images[1:3])
    with _DtypeRecorder() as recorder:
        logits = one_image.forward_int(x)
    floats = sorted({op for op, dtype in recorder.seen if dtype.is_floating_point})
    assert not floats, f"float tensors inside the integer model: {floats}"
    assert {dtype for _, dtype in recorder.seen} <= {torch.int8, torch.int16, torch.int32, torch.int64, torch.bool}
    assert logits.dtype == torch.int8 and logits.shape == (2, 150, SIZE, SIZE)
    assert all(not b.dtype.is_floating_point for b in one_image.buffers())


def test_close_to_the_float_model_with_one_calibration_image(float_model: torch.nn.Module, one_image: IntSegmenter,
                                                            images: torch.Tensor) -> None:
    sqnr, agreement = _compare(float_model, one_image, images[32:40])
    assert sqnr >= 17.0 and agreement >= 0.75, (sqnr, agreement)


def test_thirty_two_calibration_images(float_model: torch.nn.Module, images: torch.Tensor) -> None:
    int_model = convert_segmenter(float_model, list(images[:32]), batch_size=16)
    sqnr, agreement = _compare(float_model, int_model, images[32:40])
    assert sqnr >= 17.0 and agreement >= 0.75, (sqnr, agreement)


def test_float_forward_is_the_dequantized_integer_output(one_image: IntSegmenter, images: torch.Tensor) -> None:
    x = images[3:5]
    logits = one_image.forward_int(one_image.quantize_input(x))
    assert torch.equal(one_image(x), logits.float() * one_image.output_scale)
    masks = one_image.forward_masks_int(one_image.quantize_input(x))
    assert torch.equal(logits, masks.repeat_interleave(16, -2).repeat_interleave(16, -1))  # nearest upsampling


def test_deterministic_and_independent_of_the_batch(one_image: IntSegmenter, images: torch.Tensor) -> None:
    x = one_image.quantize_input(images[5:8])
    batch = one_image.forward_masks_int(x)
    assert torch.equal(batch, one_image.forward_masks_int(x))
    for i in range(3):
        assert torch.equal(batch[i : i + 1], one_image.forward_masks_int(x[i : i + 1]))


def test_fitted_parameters_are_in_range(one_image: IntSegmenter) -> None:
    for block in [*one_image.encoder_blocks, *one_image.decoder_blocks]:
        assert block.softmax_n in (8, 10, 12, 15) and block.softmax_x0 < 0
        assert block.gelu_x0 < 0


def test_lambda_shiftgelu_option(float_model: torch.nn.Module, images: torch.Tensor, one_image: IntSegmenter) -> None:
    """λ fitted per MLP on the calibration activations changes the sigmoid-domain x0 of some layers."""
    fitted = convert_segmenter(float_model, images[0], fit_gelu_lambda=True)
    x0s = [b.gelu_x0 for b in [*fitted.encoder_blocks, *fitted.decoder_blocks]]
    plain = [b.gelu_x0 for b in [*one_image.encoder_blocks, *one_image.decoder_blocks]]
    assert x0s != plain and len(LAMBDA_GRID) == 61
    sqnr, agreement = _compare(float_model, fitted, images[32:40])
    assert sqnr >= 17.0 and agreement >= 0.75, (sqnr, agreement)


def test_only_the_isegmenter_form_converts(images: torch.Tensor) -> None:
    with pytest.raises(QuantConfigError, match="needs the I-Segmenter form") as err:
        convert_segmenter(create_model("isegmenter_tiny", l2_norm=True), images[0])
    assert "l2_norm=False" in err.value.hint
    with pytest.raises(QuantConfigError, match="takes a Segmenter"):
        convert_segmenter(create_model("topformer_tiny"), images[0])


def test_the_input_size_is_fixed_at_conversion(one_image: IntSegmenter) -> None:
    with pytest.raises(ValueError, match="built for 64x64 inputs, got 32x32"):
        one_image.forward_int(torch.zeros(1, 3, 32, 32, dtype=torch.int8))
