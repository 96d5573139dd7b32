"""XNNPACK takes the whole graph: after ``executorch_passes`` our models lower to one delegated subgraph.

Real lowerings (each 20-70 s whatever the input size, so 64×64 and four in all: the three models through the
artifact cache, and one small module that holds every rewrite), run with ExecuTorch's Python runtime and
compared with PyTorch at the compile tolerances of ``test_compile_targets.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mobilevit_deploy.artifact_cache import cached_build, model_fingerprint
from mobilevit_deploy.export.verify import compare_outputs, seeded_image_batch
from mobilevit_deploy.models import create_model
from mobilevit_deploy.targets.executorch_passes import lowering_digest
from mobilevit_deploy.targets.executorch_support import scan_torch_for_executorch
from mobilevit_deploy.targets.executorch_target import build_executorch, run_executorch_host

SIZE = 64
REL_TOL = 1e-4
MIN_ARGMAX = 0.999
OUTSIDE_WITHOUT_PASSES = {  # what the plain XNNPACK partitioner leaves to portable kernels
    "topformer_tiny": {"aten.expand_copy.default": 16, "aten.split_with_sizes_copy.default": 1},
    "casvit_xs": {"aten.split_with_sizes_copy.default": 10},
    "casvit_xs_seg": {"aten.split_with_sizes_copy.default": 10, "aten.upsample_nearest2d.vec": 3},
}


@pytest.fixture(scope="module", params=list(OUTSIDE_WITHOUT_PASSES))
def lowered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A zoo model (seeded weights), its ``.pte`` at 64×64 and the build report."""
    name = request.param
    model = create_model(name)
    pte = tmp_path_factory.mktemp(name) / "model.pte"
    parts = {"model": model_fingerprint(model), "input_size": SIZE, "lowering": lowering_digest()}
    report, _hit = cached_build("executorch", parts, pte, lambda dest: build_executorch(model, SIZE, dest).report)
    return {"name": name, "model": model, "pte": pte, "report": report}


def test_one_subgraph_and_nothing_outside(lowered: dict[str, Any]) -> None:
    delegation, passes = lowered["report"]["delegation"], lowered["report"]["xnnpack_passes"]
    assert delegation["delegated_subgraphs"] == 1 and delegation["non_delegated"] == {}
    assert passes["subgraphs_after"] == 1 and passes["subgraphs_before"] >= 10
    assert passes["non_delegated_before"] == OUTSIDE_WITHOUT_PASSES[lowered["name"]]


def test_pte_matches_pytorch(lowered: dict[str, Any]) -> None:
    x = seeded_image_batch(SIZE, seed=3)
    with torch.no_grad():
        ref = lowered["model"](torch.from_numpy(x)).numpy()
    agreement = compare_outputs(run_executorch_host(lowered["pte"], x), ref)
    assert agreement.rel_max_diff <= REL_TOL, agreement
    assert agreement.argmax_agreement >= MIN_ARGMAX, agreement


def test_scan_sees_the_rewritten_graph() -> None:
    """``mvd check --target executorch`` runs the same passes, so it reports what a build leaves outside."""
    report = scan_torch_for_executorch(create_model("casvit_xs_seg"), (torch.zeros(1, 3, SIZE, SIZE),))
    assert report.ok and report.unsupported == ()


class EveryRewrite(nn.Module):
    """Each op the passes rewrite, one resize they must leave alone (×1.5), and the tensors to check them with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.conv(x)  # 1×8×16×16
        heads = y.reshape(1, 2, 4, 256)
        return (
            y,
            F.interpolate(y, size=(32, 32), mode="nearest"),
            F.interpolate(y, scale_factor=(3, 2), mode="nearest"),
            F.adaptive_avg_pool2d(y, (4, 2)),
            *(t + 0.0 for t in torch.split(y, [3, 5], dim=1)),  # + 0.0: outputs that are not views of y
            *(t + 0.0 for t in y.chunk(3, dim=-3)),
            torch.matmul(heads.permute(0, 1, 3, 2), heads),  # 4-D matmul: expand_copy to the same shape
            F.interpolate(y, size=(24, 24), mode="nearest"),
        )


@pytest.fixture(scope="module")
def every_rewrite(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[torch.Tensor]]:
    """The module's build report and the lowered program's outputs for a seeded input."""
    from executorch.runtime import Runtime

    torch.manual_seed(0)
    pte = tmp_path_factory.mktemp("every_rewrite") / "model.pte"
    report = build_executorch(EveryRewrite().eval(), 32, pte).report
    x = torch.from_numpy(seeded_image_batch(32, seed=1))
    return report, list(Runtime.get().load_program(pte).load_method("forward").execute([x]))


def test_rewrites_are_exact_inside_xnnpack(every_rewrite: tuple[dict[str, Any], list[torch.Tensor]]) -> None:
    """Checked against the delegate's own conv output ``y``, so conv rounding does not hide a rewrite's error."""
    _report, (y, up2, up32, pooled, a, b, c, d, e, attn, _odd) = every_rewrite
    assert torch.equal(up2, F.interpolate(y, size=(32, 32), mode="nearest"))
    assert torch.equal(up32, F.interpolate(y, scale_factor=(3, 2), mode="nearest"))
    for piece, expected in zip((a, b, c, d, e), (*torch.split(y, [3, 5], dim=1), *y.chunk(3, dim=1)), strict=True):
        assert torch.equal(piece, expected)
    torch.testing.assert_close(pooled, F.adaptive_avg_pool2d(y, (4, 2)), rtol=1e-6, atol=1e-6)
    heads = y.reshape(1, 2, 4, 256)
    torch.testing.assert_close(attn, heads.permute(0, 1, 3, 2) @ heads, rtol=1e-5, atol=1e-5)


def test_what_no_pass_handles_is_named(every_rewrite: tuple[dict[str, Any], list[torch.Tensor]]) -> None:
    """A ×1.5 nearest resize has no exact XNNPACK form: it stays on portable kernels, after the one subgraph."""
    report, outputs = every_rewrite
    assert report["xnnpack_passes"]["non_delegated_before"] == {
        "aten.upsample_nearest2d.vec": 3, "aten.split_with_sizes_copy.default": 2,
        "aten.expand_copy.default": 2, "aten._adaptive_avg_pool2d.default": 1}
    assert report["delegation"]["non_delegated"] == {"aten.upsample_nearest2d.vec": 1}
    assert report["delegation"]["delegated_subgraphs"] == 1
    assert torch.equal(outputs[-1], F.interpolate(outputs[0], size=(24, 24), mode="nearest"))
    scan = scan_torch_for_executorch(EveryRewrite().eval(), (torch.zeros(1, 3, 32, 32),)).to_dict()
    assert [(u["op"], u["count"]) for u in scan["unsupported"]] == [("aten.upsample_nearest2d.vec", 1)]

