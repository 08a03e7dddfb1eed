"""The classifier: a torchvision model whose head runs in float32, and its optimiser."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision

from scopeloss.params import ExperimentConfig


def make_optimizer(params, e: ExperimentConfig) -> torch.optim.Optimizer:
    # fused: one kernel over every parameter; ResNet18's Adam step on one CPU core takes
    # 6 ms instead of 35 (SGD 5 instead of 11), and fused kernels exist on CUDA too.
    if e.optimizer == "adam":
        return torch.optim.Adam(params, lr=e.lr, weight_decay=e.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=e.lr, momentum=e.momentum, weight_decay=e.weight_decay,
                           fused=True)


class Float32Linear(torch.nn.Linear):
    """A Linear layer that computes in float32 with autocast off: the classifier head, so
    logits (and their argmax) are never rounded to bf16. Same parameters and state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float(),
                            None if self.bias is None else self.bias.float())


class _CifarBlock(torch.nn.Module):
    """A basic block; a shortcut that halves the size pads its channels with zeros (He et
    al.'s option A, as the long-tail codebases' ResNet-32)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.pad = cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.pad:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class CifarResNet(torch.nn.Module):
    """The CIFAR ResNet of He et al. (2016), depth 6n + 2 (ResNet-32: n = 5): three stages of
    n basic blocks at 16, 32 and 64 channels, global pooling, a linear head."""

    def __init__(self, n: int, num_classes: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_CifarBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = torch.nn.Sequential(*blocks)
        self.fc = torch.nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


CIFAR_DEPTHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}


def build_model(name: str, num_classes: int) -> torch.nn.Module:
    """A torchvision model, or a CIFAR ResNet (``CIFAR_DEPTHS``), whose last Linear layer
    (the head) runs in float32."""
    if name in CIFAR_DEPTHS:
        model: torch.nn.Module = CifarResNet(CIFAR_DEPTHS[name], num_classes)
    else:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    heads = [m for m in model.modules() if type(m) is torch.nn.Linear]
    if heads:
        heads[-1].__class__ = Float32Linear
    return model
