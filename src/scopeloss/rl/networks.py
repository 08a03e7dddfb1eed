"""Actor-critic networks: the IMPALA CNN (Espeholt et al. 2018), the MinAtar network
(Young & Tian 2019) and a small MLP.

The IMPALA CNN follows CleanRL ``ppo_procgen.py``: three stages of channels 16, 32, 32,
each conv3x3 -> maxpool 3/2 -> two residual blocks (ReLU, conv, ReLU, conv, + skip), then
ReLU -> Linear 256 -> ReLU and the policy and value heads. Heads (and the 256 layer) get
orthogonal init: policy std 0.01 (near-uniform initial policy), value std 1. Inputs are
uint8 images, scaled by 1/255 inside the network so that rollouts store uint8. Use the
CNN with ``.to(memory_format=torch.channels_last)``.

Under bf16 autocast only the convolutions run in bf16: the 256 layer and the heads run in
float32 with autocast off. In bf16 a value of 50-300 (gamma 0.999 on Atari) is rounded to
steps of 0.25-2 and log-probabilities carry ~6e-3 error, which would make advantages and
PPO's importance ratios noisy; the 256 layer is ~1% of the CNN's multiply-adds, so keeping
it in float32 costs little and removes one more rounding of what both heads read. The MLP
is small and runs wholly in float32.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor, nn


Layer = TypeVar("Layer", nn.Linear, nn.Conv2d)


def layer_init(layer: Layer, std: float = float(np.sqrt(2)), bias: float = 0.0) -> Layer:
    nn.init.orthogonal_(layer.weight, std)
    assert layer.bias is not None  # every layer here is built with a bias
    nn.init.constant_(layer.bias, bias)
    return layer


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ConvSequence(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(nn.Module):
    """``forward(obs) -> (logits, value)`` for uint8 images, (N, C, H, W) or (N, H, W, C)."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, *, hwc: bool = False,
                 channels: tuple[int, ...] = (16, 32, 32), hidden: int = 256):
        super().__init__()
        self.hwc = hwc
        c, h, w = (obs_shape[2], obs_shape[0], obs_shape[1]) if hwc else obs_shape
        stages = []
        for out in channels:
            stages.append(ConvSequence(c, out))
            c, h, w = out, (h + 1) // 2, (w + 1) // 2  # maxpool 3/2 with padding 1
        self.features = nn.Sequential(*stages, nn.Flatten(), nn.ReLU(),
                                      layer_init(nn.Linear(c * h * w, hidden)), nn.ReLU())
        self.actor = layer_init(nn.Linear(hidden, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), std=1.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        x = obs.permute(0, 3, 1, 2) if self.hwc else obs  # HWC: a channels_last NCHW view
        # channels_last is faster for these convs on GPU (cuDNN) and CPU (oneDNN, ~2-3x here).
        x = x.contiguous(memory_format=torch.channels_last)
        h = x.float() / 255.0
        convs = len(self.features) - 2  # then Linear 256 and ReLU, in float32 with the heads
        for i in range(convs):
            h = self.features[i](h)
        with torch.autocast(device_type=h.device.type, enabled=False):
            hidden = self.features[convs + 1](self.features[convs](h.float()))
            return self.actor(hidden), self.critic(hidden).squeeze(-1)


class MinAtarCNN(nn.Module):
    """Young & Tian 2019 (MinAtar's DQN/AC network): conv3x3 16 channels (stride 1, no
    padding) -> ReLU -> flatten -> Linear 128 -> ReLU, then policy and value heads.
    ``forward(obs)`` takes (N, H, W, C) bool/uint8 grids of 0/1 (not scaled), or
    (N, C, H, W) with ``hwc=False``. Init as the other networks here (orthogonal, heads
    0.01 / 1); Young & Tian used PyTorch's default init."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, *, hwc: bool = True,
                 channels: int = 16, hidden: int = 128):
        super().__init__()
        self.hwc = hwc
        c, h, w = (obs_shape[2], obs_shape[0], obs_shape[1]) if hwc else obs_shape
        self.features = nn.Sequential(
            layer_init(nn.Conv2d(c, channels, 3)), nn.ReLU(), nn.Flatten(),
            layer_init(nn.Linear(channels * (h - 2) * (w - 2), hidden)), nn.ReLU())
        self.actor = layer_init(nn.Linear(hidden, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), std=1.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        # NCHW-contiguous float: a permuted (channels-last) view makes the CPU's ReLU
        # backward take a slow strided path (about a fifth of the update's time)
        x = (obs.permute(0, 3, 1, 2) if self.hwc else obs).float().contiguous()
        hidden = self.features(x)
        return self.actor(hidden), self.critic(hidden).squeeze(-1)


class MLP(nn.Module):
    """CleanRL ``ppo.py`` actor-critic: separate 64-64 tanh trunks for policy and value."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, hidden: int = 64):
        super().__init__()
        n = int(np.prod(obs_shape))

        def trunk() -> nn.Sequential:
            return nn.Sequential(layer_init(nn.Linear(n, hidden)), nn.Tanh(),
                                 layer_init(nn.Linear(hidden, hidden)), nn.Tanh())

        self.actor = nn.Sequential(trunk(), layer_init(nn.Linear(hidden, num_actions), std=0.01))
        self.critic = nn.Sequential(trunk(), layer_init(nn.Linear(hidden, 1), std=1.0))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(device_type=obs.device.type, enabled=False):  # float32 throughout
            x = obs.flatten(1).float()
            return self.actor(x), self.critic(x).squeeze(-1)


def make_network(obs_shape: tuple[int, ...], num_actions: int, *, image: bool,
                 hwc: bool = False, network: str | None = None) -> nn.Module:
    """``network``: a suite's own choice (the env's ``network``: "minatar"); None = the
    IMPALA CNN for images, the MLP otherwise."""
    if network == "minatar":
        return MinAtarCNN(obs_shape, num_actions, hwc=hwc)
    if network is not None:
        raise ValueError(f"unknown network {network!r}; allowed: minatar or None")
    if image:
        return ImpalaCNN(obs_shape, num_actions, hwc=hwc)
    return MLP(obs_shape, num_actions)
