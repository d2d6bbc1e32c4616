"""The CIFAR ResNets of He et al. 2016 (depth 6n+2, option-A shortcuts): the backbone of AUM and of
"Learning from Training Dynamics"."""

from __future__ import annotations

from noisyctl.api import ModelSpec, NoisyctlError

DEPTHS = (20, 32, 44, 56, 110)


def build(spec: ModelSpec, depth: int):
    import torch.nn.functional as F
    from torch import nn

    if len(spec.input_shape) != 3:
        raise NoisyctlError(f"resnet{depth} needs image inputs, not {spec.input_shape}")
    blocks_per_stage = (depth - 2) // 6

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride = stride
            self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.pad is not None:  # option A: subsample and zero-pad the channels, no parameters
                x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + x)

    class CifarResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(spec.input_shape[0], 16, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            stages, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(blocks_per_stage):
                    stages.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.stages = nn.Sequential(*stages)
            self.fc = nn.Linear(64, spec.num_classes)
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(m.weight)

        def forward(self, x):
            x = self.stages(F.relu(self.bn(self.conv(x))))
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    return CifarResNet()


def factory(depth: int):
    def make(spec: ModelSpec):
        return build(spec, depth)

    make.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016, {(depth - 2) // 6} blocks per stage, option-A shortcuts)."
    return make
