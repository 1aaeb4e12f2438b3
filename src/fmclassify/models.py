"""The course's models, each registered by name.

The classes know nothing of the registry; the registered functions are thin and fix each
variant's sizes (STYLE.md, habit 2). Every builder takes ``num_classes``, ``in_channels`` and
``image_size``, so the same names serve Fashion-MNIST and MNIST (1x28x28) and CIFAR-10 (3x32x32).

=========  =======================================================  ======================
name       architecture                                             parameters (1x28x28)
=========  =======================================================  ======================
base       MLP 784-512-512-10, ReLU (the PyTorch quickstart)        669,706
deeper     the course's CNN: two conv blocks, 2304-600-120-10       1,475,338
wider      MLP 784-1024-728-10, ReLU                                1,557,330
=========  =======================================================  ======================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fmclassify.exceptions import ConfigError
from fmclassify.registry import register_model

__all__ = ["MLP", "CourseCNN", "base", "deeper", "wider"]


class MLP(nn.Module):
    """A fully connected network: flatten, then Linear+ReLU per hidden layer, then Linear.

    Parameters
    ----------
    in_features : int
        Pixels per image times channels (784 for 1x28x28).
    hidden : sequence of int
        Width of each hidden layer, e.g. ``(512, 512)``.
    num_classes : int
        Number of output logits.

    Examples
    --------
    >>> model = MLP(in_features=784, hidden=(512, 512), num_classes=10)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, *, in_features: int, hidden: Sequence[int], num_classes: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        # Named like the quickstart's NeuralNetwork so its state dicts and tables read the same.
        self.linear_relu_stack = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (B, num_classes) for images of shape (B, C, H, W)."""
        x = self.flatten(x)  # (B, C, H, W) -> (B, C*H*W)
        logits: torch.Tensor = self.linear_relu_stack(x)  # (B, C*H*W) -> (B, num_classes)
        return logits


class CourseCNN(nn.Module):
    """The course's "deeper" network: two conv blocks, then three linear layers.

    Conv2d(d, 32, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2); Conv2d(32, 64, 3),
    BatchNorm2d, ReLU, MaxPool2d(2); Linear(64*s*s, 600), Dropout(0.25), Linear(600, 120),
    Linear(120, num_classes), where ``s = (image_size // 2 - 2) // 2`` (6 for 28x28 images).
    As in the course, the linear layers have no activation between them.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
    image_size : int
        Height and width of the square input images; at least 8.
    num_classes : int
        Number of output logits.

    Examples
    --------
    >>> model = CourseCNN(in_channels=3, image_size=32, num_classes=10)   # CIFAR-10 shapes
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        side = (image_size // 2 - 2) // 2  # padding=1 conv keeps s; pool s/2; 3x3 conv -2; pool /2
        if side < 1:
            raise ConfigError(
                f"image_size {image_size} is too small for the 'deeper' CNN; it needs at least 8"
            )
        self.layer1 = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(32, 64, kernel_size=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.fc1 = nn.Linear(64 * side * side, 600)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(600, 120)
        self.fc3 = nn.Linear(120, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (B, num_classes) for images of shape (B, C, H, W)."""
        x = _conv_block(self.layer1, x)  # (B, C, 28, 28) -> (B, 32, 14, 14)
        x = _conv_block(self.layer2, x)  # -> (B, 64, 6, 6)
        x = x.flatten(1)  # -> (B, 2304)
        x = self.drop(self.fc1(x))  # -> (B, 600)
        x = self.fc2(x)  # -> (B, 120)
        logits: torch.Tensor = self.fc3(x)  # -> (B, num_classes)
        return logits


def _conv_block(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a ``Conv2d, BatchNorm2d, ReLU, MaxPool2d`` block, pooling before the ReLU.

    ReLU and max-pooling are both monotone, so ``relu(maxpool(h)) == maxpool(relu(h))``
    exactly, and so are the gradients (a window whose maximum is not positive passes no gradient
    either way; ties resolve to the same element). Pooling first applies the ReLU, forward and
    backward, to a quarter of the values, and spares memory-format copies in the max-pool's
    backward on the CPU (``benchmarks/cnn_speed.py`` compares both orders). The block's modules
    and their order stay the course's, and a block with hooks of its own (to look at its
    output, say) is called as the ``Sequential`` it is, so the hooks run.
    """
    if block._forward_hooks or block._forward_pre_hooks or block._backward_hooks \
            or block._backward_pre_hooks:
        return block(x)  # type: ignore[no-any-return]
    conv, norm, relu, pool = block
    return relu(pool(norm(conv(x))))  # type: ignore[no-any-return]


@register_model("base", aliases=("quickstart",), description="784-512-512-10 MLP (quickstart)")
def base(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> MLP:
    """The PyTorch quickstart MLP: 784-512-512-10 with ReLU."""
    return MLP(in_features=in_channels * image_size**2, hidden=(512, 512), num_classes=num_classes)


@register_model("deeper", aliases=("cnn",), description="the course's CNN (2 conv blocks + 3 FC)")
def deeper(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> CourseCNN:
    """The course's deeper network: two conv blocks with batch norm, then 600-120-10."""
    return CourseCNN(in_channels=in_channels, image_size=image_size, num_classes=num_classes)


@register_model("wider", description="784-1024-728-10 MLP")
def wider(*, num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> MLP:
    """A wider MLP: 784-1024-728-10 with ReLU."""
    return MLP(in_features=in_channels * image_size**2, hidden=(1024, 728), num_classes=num_classes)
