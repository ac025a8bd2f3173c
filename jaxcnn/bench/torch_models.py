"""PyTorch twins of zoo models, for side-by-side timing only.

Each builder returns a ``torch.nn.Module`` with the same architecture and the
same number of trainable parameters as the jaxcnn model of the same name
(:func:`jaxcnn.bench.model_bench.benchmark_model` asserts the count). Torch
is imported inside the functions: jaxcnn itself never needs it, and
:func:`torch_available` lets callers skip the comparison when it is missing.

Models take NCHW images (PyTorch's convention) and return
``(N, num_classes)`` logits. Weights are PyTorch's default initialisation:
the benchmark times steps, it does not compare numbers.
"""
from __future__ import annotations

import importlib.util

__all__ = ["TORCH_MODELS", "torch_available", "torch_model"]

# Zoo names with a PyTorch twin here.
TORCH_MODELS = ("lenet5", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")


def torch_available() -> bool:
    """Whether ``import torch`` would succeed (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def torch_model(name: str, num_classes: int = 10):
    """The PyTorch twin of zoo model ``name`` (one of :data:`TORCH_MODELS`).

    Raises ValueError for a name without a twin (listing the ones that have one).
    """
    if name == "lenet5":
        return _lenet5(num_classes)
    if name.startswith("resnet") and name in TORCH_MODELS:
        return _cifar_resnet(int(name[len("resnet"):]), num_classes)
    raise ValueError(
        f"no PyTorch twin for model {name!r}; models with one: {', '.join(TORCH_MODELS)}"
    )


def _lenet5(num_classes: int):
    """jaxcnn.models.LeNet5: conv 20@5x5 pad 2, pool 2, conv 50@5x5 pad 2, pool 2, fc 500, fc."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 20, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(20, 50, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(50 * 7 * 7, 500),
        nn.ReLU(),
        nn.Linear(500, num_classes),
    )


def _cifar_resnet(depth: int, num_classes: int):
    """jaxcnn.models.CifarResNet with option-A (zero-padding) shortcuts, 16/32/64 channels."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicBlock(nn.Module):
        def __init__(self, in_channels: int, features: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, features, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(features)
            self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(features)
            self.stride = stride
            self.extra = features - in_channels

        def shortcut(self, x):
            if self.stride == 1 and self.extra == 0:
                return x
            # Option A, as jaxcnn.models.resnet.zero_pad_shortcut: subsample, then
            # zero channels split before and after (F.pad pads the last dims first).
            x = x[:, :, :: self.stride, :: self.stride]
            return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + self.shortcut(x))

    class CifarResNet(nn.Module):
        def __init__(self):
            super().__init__()
            blocks_per_stage = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            blocks, channels = [], 16
            for stage in range(3):
                features = 16 * 2**stage
                for index in range(blocks_per_stage):
                    stride = 2 if stage > 0 and index == 0 else 1
                    blocks.append(BasicBlock(channels, features, stride))
                    channels = features
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(channels, num_classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return CifarResNet()
