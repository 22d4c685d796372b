"""A ResNet + feature pyramid feature extractor for MONAI's RetinaNet that needs no torchvision.

MONAI builds RetinaNet's feature extractor with
``monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor``, whose ``BackboneWithFPN``
wraps the backbone in torchvision's ``IntermediateLayerGetter``. torchvision cannot be installed beside our torch,
so this module re-implements the extractor in plain ``torch.nn`` with *the same module tree*: every
``state_dict`` key and shape equals MONAI's, so a Model Zoo ``model.pt`` (e.g. lung_nodule_ct_detection, a
RetinaNet over a 3D ResNet50 + FPN) loads with ``strict=True`` and computes the same function.

Two entry points:

- :func:`resnet_fpn_feature_extractor` has MONAI's signature and wraps a given ResNet (MONAI's
  ``monai.networks.nets.resnet.ResNet`` or our :class:`ResNet`); the bundle loader substitutes it for MONAI's.
- :class:`ResNetFPNFeatureExtractor` builds backbone and pyramid in one go (used by the built-in detectors).

Layout reproduced (``body`` = the backbone's children up to the last returned layer, run in registration order
exactly as ``IntermediateLayerGetter`` does; ``fpn`` = MONAI's ``FeaturePyramidNetwork`` with a
``LastLevelMaxPool``)::

    body.conv1 body.bn1 body.act body.maxpool body.layer1.0.conv1 ... body.layerK.*
    fpn.inner_blocks.{i} (1x1 conv, bias)  fpn.layer_blocks.{i} (3x3 conv, bias)  fpn.extra_blocks.maxpool
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: MONAI's ``monai.networks.nets.resnetNN()`` functions: (block, layers). Like those functions we default to
#: ``shortcut_type="B"`` and ``bias_downsample=True`` (``ResNet``'s defaults; the MedicalNet table differs).
RESNET_PARAMS = {
    "resnet10": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}


_Conv = type[nn.Conv1d] | type[nn.Conv2d] | type[nn.Conv3d]
_Norm = type[nn.BatchNorm1d] | type[nn.BatchNorm2d] | type[nn.BatchNorm3d]
_CONVS: dict[int, _Conv] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORMS: dict[int, _Norm] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _conv(spatial_dims: int) -> _Conv:
    return _CONVS[spatial_dims]


def _norm(spatial_dims: int) -> _Norm:
    return _NORMS[spatial_dims]


def _tuple(value, n: int) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {value}")
        return tuple(value)
    return (value,) * n


class _ShortcutA(nn.Module):
    """Parameter-free shortcut: strided identity zero-padded to more channels (MONAI's shortcut 'A')."""

    def __init__(self, planes: int, stride: int, spatial_dims: int):
        super().__init__()
        self.planes, self.stride, self.spatial_dims = planes, stride, spatial_dims

    def forward(self, x: Tensor) -> Tensor:
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[self.spatial_dims]
        out = pool(x, kernel_size=1, stride=self.stride)
        pad = torch.zeros(out.size(0), self.planes - out.size(1), *out.shape[2:], dtype=out.dtype, device=out.device)
        return torch.cat([out, pad], dim=1)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (names as MONAI's ``ResNetBlock``)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, spatial_dims: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        conv, norm = _conv(spatial_dims), _norm(spatial_dims)
        self.conv1 = conv(in_planes, planes, kernel_size=3, padding=1, stride=stride, bias=False)
        self.bn1 = norm(planes)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + residual)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions, 4x expansion (names as MONAI's ``ResNetBottleneck``)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, spatial_dims: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        conv, norm = _conv(spatial_dims), _norm(spatial_dims)
        self.conv1 = conv(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = conv(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = conv(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm(planes * self.expansion)
        self.act = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + residual)


class ResNet(nn.Module):
    """The convolutional trunk of MONAI's ``ResNet`` (no pooling head), with identical parameter names.

    ``in_planes`` after construction equals MONAI's (the last layer's output channels), which is what
    :func:`resnet_fpn_feature_extractor` uses to size the pyramid.
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3),
                 block_inplanes: Sequence[int] = (64, 128, 256, 512), spatial_dims: int = 3,
                 n_input_channels: int = 1, conv1_t_size=7, conv1_t_stride=1, shortcut_type: str = "B",
                 bias_downsample: bool = True, widen_factor: float = 1.0, n_layers: int = 4):
        super().__init__()
        block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        planes = [int(p * widen_factor) for p in block_inplanes]
        conv, norm = _conv(spatial_dims), _norm(spatial_dims)
        kernel, stride = _tuple(conv1_t_size, spatial_dims), _tuple(conv1_t_stride, spatial_dims)
        self.spatial_dims = spatial_dims
        self.in_planes = planes[0]
        self.conv1 = conv(n_input_channels, self.in_planes, kernel_size=kernel, stride=stride,
                          padding=tuple(k // 2 for k in kernel), bias=False)
        self.bn1 = norm(self.in_planes)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims](3, stride=2, padding=1)
        for i in range(n_layers):
            layer = self._make_layer(block_cls, planes[i], layers[i], spatial_dims, shortcut_type, bias_downsample,
                                     stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", layer)
        for m in self.modules():
            if isinstance(m, conv):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, norm):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block_cls, planes: int, blocks: int, spatial_dims: int, shortcut_type: str,
                    bias_downsample: bool, stride: int) -> nn.Sequential:
        downsample: nn.Module | None = None
        out_planes = planes * block_cls.expansion
        if stride != 1 or self.in_planes != out_planes:
            if shortcut_type == "A":
                downsample = _ShortcutA(out_planes, stride, spatial_dims)
            else:
                downsample = nn.Sequential(
                    _conv(spatial_dims)(self.in_planes, out_planes, kernel_size=1, stride=stride,
                                        bias=bias_downsample),
                    _norm(spatial_dims)(out_planes),
                )
        layers = [block_cls(self.in_planes, planes, spatial_dims, stride=stride, downsample=downsample)]
        self.in_planes = out_planes
        layers += [block_cls(self.in_planes, planes, spatial_dims) for _ in range(1, blocks)]
        return nn.Sequential(*layers)


class LayerGetter(nn.ModuleDict):
    """The backbone's children up to the last returned layer, applied in order; returns the named outputs.

    Same behaviour and state_dict layout as torchvision's ``IntermediateLayerGetter``: the children are run in
    registration order (so a ResNet's ``maxpool`` always runs), later children (``avgpool``, ``fc``) are dropped.
    """

    def __init__(self, backbone: nn.Module, return_layers: dict[str, str]):
        names = [name for name, _ in backbone.named_children()]
        if not set(return_layers) <= set(names):
            raise ValueError(f"return_layers {sorted(return_layers)} are not children of the backbone")
        wanted = dict(return_layers)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for name, module in backbone.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out: OrderedDict[str, Tensor] = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class LastLevelMaxPool(nn.Module):
    """An extra pyramid level: a stride-2 1x1 max-pool of the coarsest level, named ``pool``."""

    def __init__(self, spatial_dims: int):
        super().__init__()
        self.maxpool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims](1, stride=2, padding=0)

    def forward(self, results: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
        return results + [self.maxpool(results[-1])], names + ["pool"]


class FeaturePyramid(nn.Module):
    """Top-down feature pyramid: 1x1 lateral convs, nearest upsampling, 3x3 output convs (all with bias)."""

    def __init__(self, spatial_dims: int, in_channels_list: Sequence[int], out_channels: int):
        super().__init__()
        conv = _conv(spatial_dims)
        self.inner_blocks = nn.ModuleList(conv(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(conv(out_channels, out_channels, 3, padding=1) for _ in in_channels_list)
        for m in self.modules():
            if isinstance(m, conv):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:  # always: the pyramid's convolutions keep their bias
                    nn.init.constant_(m.bias, 0.0)
        self.extra_blocks = LastLevelMaxPool(spatial_dims)

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        names = list(x.keys())
        feats = list(x.values())
        last_inner = self.inner_blocks[-1](feats[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(feats) - 2, -1, -1):
            lateral = self.inner_blocks[idx](feats[idx])
            last_inner = lateral + F.interpolate(last_inner, size=lateral.shape[2:], mode="nearest")
            results.insert(0, self.layer_blocks[idx](last_inner))
        results, names = self.extra_blocks(results, names)
        return OrderedDict(zip(names, results))


class BackboneWithFPN(nn.Module):
    """``body`` (a :class:`LayerGetter`) followed by ``fpn`` (a :class:`FeaturePyramid`); ``out_channels`` set."""

    def __init__(self, backbone: nn.Module, return_layers: dict[str, str], in_channels_list: Sequence[int],
                 out_channels: int, spatial_dims: int):
        super().__init__()
        self.body = LayerGetter(backbone, return_layers)
        self.fpn = FeaturePyramid(spatial_dims, in_channels_list, out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.fpn(self.body(x))


def _freeze(backbone: nn.Module, trainable_layers: int) -> None:
    if not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_backbone_layers must be in [0, 5], got {trainable_layers}")
    train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        train.append("bn1")
    for name, parameter in backbone.named_parameters():
        if not any(name.startswith(prefix) for prefix in train):
            parameter.requires_grad_(False)


def resnet_fpn_feature_extractor(backbone: nn.Module, spatial_dims: int, pretrained_backbone: bool = False,
                                 returned_layers: Sequence[int] = (1, 2, 3),
                                 trainable_backbone_layers: int | None = None) -> BackboneWithFPN:
    """Drop-in for MONAI's function of the same name (same arguments, same module tree, no torchvision).

    Parameters
    ----------
    backbone
        A ResNet exposing ``conv1``, ``bn1``, ``act``, ``maxpool``, ``layer1``.. and ``in_planes``.
    spatial_dims
        2 or 3.
    pretrained_backbone, trainable_backbone_layers
        As in MONAI: freeze all but the last ``trainable_backbone_layers`` stages (all trainable when not
        pretrained, 3 by default when pretrained). Inference ignores it; it matters for fine-tuning.
    returned_layers
        ResNet stages (1..4) whose outputs feed the pyramid; one extra max-pooled level is appended.
    """
    if not pretrained_backbone:
        trainable = 5
    else:
        trainable = 3 if trainable_backbone_layers is None else int(trainable_backbone_layers)
    _freeze(backbone, trainable)
    returned = list(returned_layers)
    if not returned or min(returned) < 1 or max(returned) > 4:
        raise ValueError(f"each returned layer must be in [1, 4], got {returned}")
    return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned)}
    # As MONAI: the pyramid's input widths follow from the backbone's final width (in_planes // 8 = stage-1 width).
    in_planes = backbone.in_planes
    if not isinstance(in_planes, int):
        raise TypeError(f"the backbone's in_planes must be its final width (an int), got {type(in_planes).__name__}")
    stage1 = in_planes // 8
    in_channels_list = [stage1 * 2 ** (k - 1) for k in returned]
    return BackboneWithFPN(backbone, return_layers, in_channels_list, 256, spatial_dims)


class ResNetFPNFeatureExtractor(BackboneWithFPN):
    """Backbone and pyramid in one: ``ResNetFPNFeatureExtractor("resnet50", conv1_t_stride=(2, 2, 1))``.

    Builds only the ResNet stages the pyramid uses. With the defaults (``block_inplanes`` 64..512,
    ``out_channels`` 256) its ``state_dict`` equals the one of ``resnet_fpn_feature_extractor(monai resnet, ...)``
    with the same settings; narrower ``block_inplanes`` / ``out_channels`` give the small CPU detectors.
    """

    def __init__(self, arch: str = "resnet50", spatial_dims: int = 3, n_input_channels: int = 1,
                 conv1_t_size=7, conv1_t_stride=1, returned_layers: Sequence[int] = (1, 2),
                 block_inplanes: Sequence[int] = (64, 128, 256, 512), shortcut_type: str = "B",
                 bias_downsample: bool = True, out_channels: int = 256):
        block, layers = RESNET_PARAMS[arch]
        returned = list(returned_layers)
        # Stages past the last returned one would be dropped by the layer getter: do not build them at all.
        full = ResNet(block, layers, block_inplanes, spatial_dims, n_input_channels, conv1_t_size, conv1_t_stride,
                      shortcut_type, bias_downsample, n_layers=max(returned))
        # in_planes // 8 as MONAI computes it from the complete 4-stage ResNet.
        full_width = block_inplanes[3] * (4 if block == "bottleneck" else 1)
        return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned)}
        stage1 = full_width // 8
        in_channels_list = [stage1 * 2 ** (k - 1) for k in returned]
        super().__init__(full, return_layers, in_channels_list, int(out_channels), spatial_dims)
