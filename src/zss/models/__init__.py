"""zss.models: FCN-32s backbone, per-pixel heads, losses and nearest-embedding predictors.

Plain ``torch.nn`` modules and pure functions (no Lightning); see DESIGN §1 and §3.
"""

from zss.inference.nearest import (
    check_labels,
    cosine_scores,
    masked_argmax,
    predict_fcn_je,
    predict_szn,
    predict_szn_ps,
)
from zss.models.fcn32s import (
    CAFFE_PREPROCESSING,
    IMAGENET_PREPROCESSING,
    FCN32sBackbone,
    Preprocessing,
    SmallBackbone,
    copy_vgg16_weights,
    load_pretrained,
    load_torchvision_vgg16_state_dict,
    load_vgg16_file,
    preprocessing_for,
    preprocessing_for_backbone,
    vgg16_state_dict,
    weights_format,
)
from zss.models.heads import PixelHead
from zss.models.losses import cosine_embedding_loss, masked_cross_entropy, mse_embedding_loss
from zss.models.szn import SZNNet
from zss.models.upsample import (
    FCN32S_CROP_OFFSET,
    BilinearUpsample,
    LearnedBilinearUpsample,
    Upsample32,
    bilinear_filter,
    bilinear_kernel,
)

__all__ = [
    "CAFFE_PREPROCESSING",
    "FCN32S_CROP_OFFSET",
    "IMAGENET_PREPROCESSING",
    "BilinearUpsample",
    "FCN32sBackbone",
    "LearnedBilinearUpsample",
    "PixelHead",
    "Preprocessing",
    "SZNNet",
    "SmallBackbone",
    "Upsample32",
    "bilinear_filter",
    "bilinear_kernel",
    "check_labels",
    "copy_vgg16_weights",
    "cosine_embedding_loss",
    "cosine_scores",
    "load_pretrained",
    "load_torchvision_vgg16_state_dict",
    "load_vgg16_file",
    "masked_argmax",
    "masked_cross_entropy",
    "mse_embedding_loss",
    "predict_fcn_je",
    "predict_szn",
    "predict_szn_ps",
    "preprocessing_for",
    "preprocessing_for_backbone",
    "vgg16_state_dict",
    "weights_format",
]
