"""torchvision-style architectures written here (torchvision's wheels do not load on the CPU torch build),
at few channels and small inputs, scripted (torch.jit.save) and exported (torch.export.save) as users do.

ResNet18 (BasicBlock ×2 per stage), MobileNetV3-Small (inverted residuals, squeeze-excitation,
hardswish), a GoogLeNet inception block, and a model with two inputs and a dict output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = (
            nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            if stride != 1 or inplanes != planes
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (7×7 stem, max pool, 4 stages of 2 BasicBlocks) at `width` base channels."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        inplanes = width
        for index, planes in enumerate((width, width * 2, width * 4, width * 8)):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.relu = nn.ReLU()
        self.scale = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale(self.fc2(self.relu(self.fc1(self.avgpool(x)))))


def _conv_bn(
    inp: int, out: int, kernel: int, stride: int, groups: int, activation: type[nn.Module] | None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out, eps=0.001, momentum=0.01),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(
        self, inp: int, kernel: int, expanded: int, out: int, use_se: bool, activation: type[nn.Module], stride: int
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(_conv_bn(inp, expanded, 1, 1, 1, activation))
        layers.append(_conv_bn(expanded, expanded, kernel, stride, expanded, activation))
        if use_se:
            layers.append(SqueezeExcitation(expanded, max(8, expanded // 4)))
        layers.append(_conv_bn(expanded, out, 1, 1, 1, None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.block(x)
        if self.use_residual:
            result = result + x
        return result


class MobileNetV3Small(nn.Module):
    """torchvision's mobilenet_v3_small block table, channels divided by 4."""

    # kernel, expanded, out, squeeze-excitation, activation, stride (torchvision's, ÷4 for channels)
    SETTINGS = (
        (3, 4, 4, True, nn.ReLU, 2),
        (3, 18, 6, False, nn.ReLU, 2),
        (3, 22, 6, False, nn.ReLU, 1),
        (5, 24, 10, True, nn.Hardswish, 2),
        (5, 60, 10, True, nn.Hardswish, 1),
        (5, 30, 12, True, nn.Hardswish, 1),
        (5, 72, 24, True, nn.Hardswish, 2),
        (5, 144, 24, True, nn.Hardswish, 1),
    )

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 4, 3, 2, 1, nn.Hardswish)]
        inp = 4
        for kernel, expanded, out, use_se, activation, stride in self.SETTINGS:
            layers.append(InvertedResidual(inp, kernel, expanded, out, use_se, activation, stride))
            inp = out
        layers.append(_conv_bn(inp, 144, 1, 1, 1, nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(144, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Inception(nn.Module):
    """GoogLeNet's inception block (torchvision's `Inception`: 1×1, 1×1→3×3, 1×1→3×3, pool→1×1, concatenated)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()

        def branch(*layers: nn.Module) -> nn.Sequential:
            return nn.Sequential(*layers)

        def conv(inp: int, out: int, kernel: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inp, out, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(out, eps=0.001),
                nn.ReLU(True),
            )

        self.stem = conv(3, channels, 3)
        self.branch1 = conv(channels, 4, 1)
        self.branch2 = branch(conv(channels, 4, 1), conv(4, 6, 3))
        self.branch3 = branch(conv(channels, 2, 1), conv(2, 3, 3))
        self.branch4 = branch(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(channels, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class TwoInputs(nn.Module):
    """An image and a feature vector in, a dict out: class scores and an embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.tabular = nn.Linear(4, 8)
        self.head = nn.Linear(16, 5)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = torch.cat(
            [torch.flatten(self.pool(torch.relu(self.conv(image))), 1), torch.tanh(self.tabular(features))], 1
        )
        return {"scores": torch.softmax(self.head(embedding), dim=1), "embedding": embedding}


class BoxesAndScores(nn.Module):
    """A detector-shaped head returning a tuple: normalised boxes and class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.boxes = nn.Linear(6, 4)
        self.scores = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(self.boxes(x)), torch.softmax(self.scores(x), dim=-1)


class TokenClassifier(nn.Module):
    """Token ids and a padding mask of any length in (int64 and bool), class logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(tokens) * mask.unsqueeze(-1).float()
        return self.fc(embedded.sum(1) / mask.float().sum(1, keepdim=True).clamp(min=1.0))


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[], nn.Module]
    input_spec: tuple[dict, ...]

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        model = self.build()
        _trained_statistics(model)
        return model.eval()

    def examples(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(1)
        shapes = [[batch if isinstance(dim, str) else dim for dim in entry["shape"]] for entry in self.input_spec]
        return tuple(torch.randn(shape, generator=generator) for shape in shapes)


def _image(size: int) -> dict:
    return {"name": "x", "dtype": "float32", "shape": ["batch", 3, size, size]}


ARCHITECTURES = {
    "ResNet18": Architecture("ResNet18", ResNet18, (_image(32),)),
    "MobileNetV3Small": Architecture("MobileNetV3Small", MobileNetV3Small, (_image(32),)),
    "Inception": Architecture("Inception", Inception, (_image(16),)),
    "TwoInputs": Architecture(
        "TwoInputs",
        TwoInputs,
        (
            {"name": "image", "dtype": "float32", "shape": ["batch", 3, 16, 16]},
            {"name": "features", "dtype": "float32", "shape": ["batch", 4]},
        ),
    ),
}


def _trained_statistics(model: nn.Module) -> None:
    """BatchNorm statistics as training leaves them (not 0/1), so that parity checks real arithmetic."""
    generator = torch.Generator().manual_seed(2)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) * 0.5 + 0.75)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) * 0.5 + 0.75)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


def save_torchscript(model: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(model), str(path))
    return path


def save_exported(
    model: nn.Module, examples: tuple[torch.Tensor, ...], input_spec: tuple[dict, ...], path: Path
) -> Path:
    """torch.export with the batch dimension dynamic, as docs/conversion.md tells users to export."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = {entry["name"]: {0: batch} for entry in input_spec}
    program = torch.export.export(model, examples, dynamic_shapes=dynamic)
    torch.export.save(program, str(path))
    return path
