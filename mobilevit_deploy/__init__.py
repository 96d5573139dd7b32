"""mobilevit-deploy: efficient vision-transformer segmentation models from PyTorch to ARM phones."""

__version__ = "0.1.0"
