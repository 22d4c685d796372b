"""Our torchvision-free ResNet+FPN has exactly the parameters the Model Zoo RetinaNet expects.

The reference is built independently, in a subprocess, with MONAI's own code path for the bundle's expressions
(``monai.networks.nets.resnet.resnet50`` -> ``monai.apps.detection...resnet_fpn_feature_extractor`` ->
``RetinaNet``). MONAI needs two tiny torchvision helpers for that (``IntermediateLayerGetter``,
``_validate_trainable_layers``); the subprocess provides them from their documented behaviour, so the module
tree under test is MONAI's, not ours.
"""
from __future__ import annotations

import json

import pytest
import torch

from inference.bundle import load_bundle
from inference.models.resnet_fpn import ResNetFPNFeatureExtractor
from tests.inference.helpers import run_in_subprocess, zoo_bundle

REFERENCE = r'''
import json, sys, types
from collections import OrderedDict
import torch
from torch import nn

class IntermediateLayerGetter(nn.ModuleDict):
    """torchvision.models._utils.IntermediateLayerGetter: children up to the last returned one, run in order."""
    def __init__(self, model, return_layers):
        wanted = dict(return_layers)
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            wanted.pop(name, None)
            if not wanted:
                break
        super().__init__(layers)
        self.return_layers = dict(return_layers)
    def forward(self, x):
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out

def _validate_trainable_layers(is_trained, trainable_backbone_layers, max_value, default_value):
    if not is_trained:
        return max_value
    return default_value if trainable_backbone_layers is None else trainable_backbone_layers

tv = types.ModuleType("torchvision"); models = types.ModuleType("torchvision.models")
utils = types.ModuleType("torchvision.models._utils"); det = types.ModuleType("torchvision.models.detection")
bb = types.ModuleType("torchvision.models.detection.backbone_utils")
utils.IntermediateLayerGetter = IntermediateLayerGetter
bb._validate_trainable_layers = _validate_trainable_layers
tv.models, models._utils, models.detection, det.backbone_utils = models, utils, det, bb
sys.modules.update({"torchvision": tv, "torchvision.models": models, "torchvision.models._utils": utils,
                    "torchvision.models.detection": det, "torchvision.models.detection.backbone_utils": bb})

import monai
from monai.apps.detection.networks.retinanet_network import RetinaNet, resnet_fpn_feature_extractor
from monai.networks.nets import resnet
torch.manual_seed(0)
# Exactly the expressions of lung_nodule_ct_detection/configs/inference.json:
backbone = resnet.resnet50(spatial_dims=3, n_input_channels=1, conv1_t_stride=[2, 2, 1], conv1_t_size=[7, 7, 7])
feature_extractor = resnet_fpn_feature_extractor(backbone, 3, False, [1, 2], None)
assert type(feature_extractor.body).__module__ == "__main__"  # MONAI's BackboneWithFPN over the helper above
net = RetinaNet(spatial_dims=3, num_classes=1, num_anchors=3, feature_extractor=feature_extractor,
                size_divisible=[16, 16, 8], use_list_output=False).eval()
x = torch.linspace(0, 1, 64 * 64 * 32).reshape(1, 1, 64, 64, 32)
with torch.no_grad():
    out = net(x)
torch.save({"state": net.state_dict(), "x": x, "cls": out["classification"], "box": out["box_regression"]},
           sys.argv[1] if len(sys.argv) > 1 else OUT)
print(json.dumps([[k, list(v.shape)] for k, v in net.state_dict().items()]))
'''


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "reference.pt"
    stdout = run_in_subprocess(f"OUT = {str(out)!r}\n" + REFERENCE)
    names_shapes = json.loads(stdout.strip().splitlines()[-1])
    return names_shapes, torch.load(out, weights_only=True)


def _names_shapes(module):
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


def test_zoo_detection_network_has_the_reference_parameter_names_and_shapes(reference):
    names_shapes, saved = reference
    loaded = load_bundle(zoo_bundle("lung_nodule_ct_detection"), device="cpu", random_weights=True)
    ours = _names_shapes(loaded.network)
    assert ours == names_shapes
    # So the real model.pt loads strictly, and computes the same function.
    loaded.network.load_state_dict(saved["state"], strict=True)
    with torch.no_grad():
        out = loaded.network(saved["x"])
    for got, want in zip(out["classification"] + out["box_regression"], saved["cls"] + saved["box"]):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_standalone_extractor_equals_the_reference_too(reference):
    from monai.apps.detection.networks.retinanet_network import RetinaNet

    names_shapes, saved = reference
    net = RetinaNet(spatial_dims=3, num_classes=1, num_anchors=3, size_divisible=[16, 16, 8],
                    feature_extractor=ResNetFPNFeatureExtractor("resnet50", conv1_t_stride=(2, 2, 1),
                                                                returned_layers=(1, 2))).eval()
    assert _names_shapes(net) == names_shapes
    net.load_state_dict(saved["state"], strict=True)
    with torch.no_grad():
        out = net(saved["x"])
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(out["classification"], saved["cls"]))


def test_documented_shapes_of_the_model_zoo_retinanet(reference):
    # From the architecture, independently of any code: 3D ResNet50 stem 7x7x7 conv 1->64 without bias; FPN over
    # layer1 (256 ch) and layer2 (512 ch) to 256 ch; 3 anchors x 1 class; 3 anchors x 6 box deltas.
    shapes = dict((k, tuple(v)) for k, v in reference[0])
    assert shapes["feature_extractor.body.conv1.weight"] == (64, 1, 7, 7, 7)
    assert shapes["feature_extractor.body.layer1.0.downsample.0.weight"] == (256, 64, 1, 1, 1)
    assert shapes["feature_extractor.body.layer2.3.conv3.weight"] == (512, 128, 1, 1, 1)
    assert shapes["feature_extractor.fpn.inner_blocks.0.weight"] == (256, 256, 1, 1, 1)
    assert shapes["feature_extractor.fpn.inner_blocks.1.weight"] == (256, 512, 1, 1, 1)
    assert shapes["feature_extractor.fpn.layer_blocks.1.weight"] == (256, 256, 3, 3, 3)
    assert shapes["classification_head.cls_logits.weight"] == (3, 256, 3, 3, 3)
    assert shapes["regression_head.bbox_reg.weight"] == (18, 256, 3, 3, 3)
    assert not any(k.startswith("feature_extractor.body.layer3") or ".fc." in k for k in shapes)
