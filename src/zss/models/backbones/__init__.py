"""Backbones, their registry, their weights and the preprocessing that goes with them.

``fcn32s`` (FCN-32s on VGG16, the paper's), ``deeplabv3plus`` (DeepLabv3+ on a ResNet, the
peers') and ``small`` (a tiny CNN for CPU demos and tests) are registered here; see :mod:`zss.models.backbones.registry` to add one.
"""

from zss.models.backbones import deeplabv3plus, fcn32s, small  # noqa: F401  (they register)
from zss.models.backbones.deeplabv3plus import DeepLabV3PlusBackbone
from zss.models.backbones.fcn32s import FCN32sBackbone, copy_vgg16_weights, load_vgg16_weights
from zss.models.backbones.preprocessing import (
    CAFFE_PREPROCESSING,
    IMAGENET_PREPROCESSING,
    Preprocessing,
)
from zss.models.backbones.registry import (
    BACKBONES,
    Backbone,
    WeightsFormatError,
    build_backbone,
    load_pretrained,
    preprocessing_for_backbone,
    pretraining_record,
    register_backbone,
)
from zss.models.backbones.small import SmallBackbone
from zss.models.backbones.vgg16_weights import (
    WEIGHTS_FORMATS,
    WeightsUnavailableError,
    load_torchvision_vgg16_state_dict,
    load_vgg16_file,
    preprocessing_for,
    vgg16_state_dict,
    weights_format,
)

__all__ = [
    "BACKBONES", "CAFFE_PREPROCESSING", "DeepLabV3PlusBackbone", "IMAGENET_PREPROCESSING", "WEIGHTS_FORMATS",
    "Backbone", "FCN32sBackbone", "Preprocessing", "SmallBackbone", "WeightsFormatError",
    "WeightsUnavailableError", "build_backbone", "copy_vgg16_weights", "load_pretrained",
    "load_torchvision_vgg16_state_dict", "load_vgg16_file", "load_vgg16_weights",
    "preprocessing_for", "preprocessing_for_backbone", "pretraining_record", "register_backbone",
    "vgg16_state_dict", "weights_format",
]
