"""Shared fixtures: small models and a seeded calibration set at 64 px so the API tests stay fast."""

from __future__ import annotations

import pytest
import torch

from mobilevit_deploy.models import create_model


@pytest.fixture(scope="session")
def calib64() -> torch.Tensor:
    return torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def topformer() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("topformer_tiny").eval()


@pytest.fixture(scope="session")
def casvit() -> torch.nn.Module:
    """The shipped demo checkpoint when present: random-init CAS-ViT has untrained pre-norm BNs whose activations
    grow through the residual stack, which is not what a deployed model looks like."""
    from mobilevit_deploy.checkpoints import default_checkpoint

    torch.manual_seed(0)
    return create_model("casvit_xs_seg", checkpoint=default_checkpoint("casvit_xs_seg")).eval()
