"""zss.models: the networks — backbones (a registry, with their weights and preprocessing),
the per-pixel heads and their ×s upsampling, SZN's network, and the training losses (a
registry).

Plain ``torch.nn`` modules and pure functions, no Lightning (the LightningModules are in
:mod:`zss.stages`; prediction at test time in :mod:`zss.inference`).
"""

from zss.models.backbones import (
    BACKBONES,
    CAFFE_PREPROCESSING,
    IMAGENET_PREPROCESSING,
    DeepLabV3PlusBackbone,
    FCN32sBackbone,
    Preprocessing,
    SmallBackbone,
    build_backbone,
    copy_vgg16_weights,
    load_pretrained,
    load_torchvision_vgg16_state_dict,
    load_vgg16_file,
    preprocessing_for,
    preprocessing_for_backbone,
    pretraining_record,
    register_backbone,
    vgg16_state_dict,
    weights_format,
)
from zss.models.heads import PixelHead
from zss.models.losses import cosine_embedding_loss, masked_cross_entropy, mse_embedding_loss
from zss.models.szn import SZNNet
from zss.models.upsample import (
    FCN32S_CROP_OFFSET,
    BilinearUpsample,
    InterpolateUpsample,
    LearnedBilinearUpsample,
    Upsample32,
    bilinear_filter,
    bilinear_kernel,
)

__all__ = [
    "BACKBONES", "CAFFE_PREPROCESSING", "DeepLabV3PlusBackbone", "FCN32S_CROP_OFFSET", "IMAGENET_PREPROCESSING",
    "BilinearUpsample", "FCN32sBackbone", "InterpolateUpsample", "LearnedBilinearUpsample", "PixelHead",
    "Preprocessing", "SZNNet", "SmallBackbone", "Upsample32", "bilinear_filter",
    "bilinear_kernel", "build_backbone", "copy_vgg16_weights", "cosine_embedding_loss",
    "load_pretrained", "load_torchvision_vgg16_state_dict", "load_vgg16_file",
    "masked_cross_entropy", "mse_embedding_loss", "preprocessing_for",
    "preprocessing_for_backbone", "pretraining_record", "register_backbone", "vgg16_state_dict", "weights_format",
]
