"""Which module of the user's model owns a library frame, read from the file path, function and source.

torchvision's detection models and timm's ViTs always put the same code under the same attribute of the
top-level model (``FCOS.head.classification_head``, ``GeneralizedRCNN.roi_heads``, ``VisionTransformer
.patch_embed``), so the file plus the function (and, where one function serves two sub-heads, the
source line) names the module path. No torch import: this works on pasted tracebacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headfit.diagnosis import Location
from headfit.explain.parse import Frame, ParsedError
from headfit.families._facts import DENSE, RCNN, SSD


@dataclass(frozen=True)
class Owner:
    module: str | None  # path in the top-level model's named_modules(); None when only the type is known
    module_type: str


_DETECTION = "models/detection/"

# torchvision's RetinaNet and FCOS heads: one file each, the same layout
_DENSE_HEADS = dict(
    zip(
        DENSE.sources,
        (
            ("RetinaNet", "RetinaNetHead", "RetinaNetClassificationHead", "RetinaNetRegressionHead"),
            ("FCOS", "FCOSHead", "FCOSClassificationHead", "FCOSRegressionHead"),
        ),
        strict=True,
    )
)
_REGRESSION_SOURCE = re.compile(r"bbox_regression|bbox_reg|bbox_ctrness|ctrness")
_CLASSIFICATION_SOURCE = re.compile(r"cls_logits|num_classes")
_TORCH_LAYERS = {
    "nn/modules/conv.py": "Conv",
    "nn/modules/linear.py": "Linear",
    "nn/modules/batchnorm.py": "BatchNorm",
    "nn/modules/pooling.py": "Pool",
    "nn/modules/normalization.py": "Norm",
}
_CONV_CALL = re.compile(r"F\.(conv(?:_transpose)?[123]d)")


def locate(parsed: ParsedError) -> Location | None:
    """The innermost library frame that names a module of the model (or a layer type), as a Location."""
    has_rpn = any((f.library_file or "").endswith("detection/rpn.py") for f in parsed.frames)
    for frame in reversed(parsed.frames):
        if frame.library is None or frame.is_plumbing:
            continue
        owner = owner_of(frame, in_rpn=has_rpn)
        if owner is not None:
            return Location(owner.module, owner.module_type, frame.file, frame.line, frame.source)
    return None


def user_location(parsed: ParsedError) -> Location | None:
    """The innermost frame in the user's own code."""
    frame = parsed.user_frame
    if frame is None:
        return None
    return Location(None, None, frame.file, frame.line, frame.source)


def owner_of(frame: Frame, in_rpn: bool = False) -> Owner | None:
    """The module that owns ``frame``'s code, or None when the path says nothing about it."""
    rel = frame.library_file
    if rel is None:
        return None
    func = frame.function or ""
    source = frame.source or ""
    if frame.library == "torchvision" and rel.startswith(_DETECTION):
        return _detection_owner(rel[len(_DETECTION) :], func, source, in_rpn)
    if frame.library == "torchvision" and rel == "models/vision_transformer.py":
        return _torchvision_vit_owner(func)
    if frame.library == "timm":
        return _timm_owner(rel, func)
    if frame.library == "torch":
        return _torch_layer_owner(rel, source)
    return None


def _detection_owner(name: str, func: str, source: str, in_rpn: bool) -> Owner | None:
    if name in _DENSE_HEADS:
        return _dense_head_owner(_DENSE_HEADS[name], func, source)
    if name in SSD.sources:
        return _ssd_owner(func, source)
    if name == "roi_heads.py":
        return Owner("roi_heads", "RoIHeads")
    if name == "transform.py":
        return Owner("transform", "GeneralizedRCNNTransform")
    if name == "anchor_utils.py":
        prefix = "rpn." if in_rpn else ""
        kind = "DefaultBoxGenerator" if "default" in source.lower() else "AnchorGenerator"
        return Owner(prefix + "anchor_generator", kind)
    if name == "rpn.py":
        in_head = "conv" in source or "cls_logits" in source
        return Owner(RCNN.rpn_head, "RPNHead") if in_head else Owner("rpn", "RegionProposalNetwork")
    if name in ("faster_rcnn.py", "mask_rcnn.py", "keypoint_rcnn.py"):
        return _rcnn_predictor_owner(name, source)
    if name == "generalized_rcnn.py":
        return Owner("", "GeneralizedRCNN")
    return None  # _utils.py (box coder, matcher) and friends: the caller's frame names the module


def _dense_head_owner(types: tuple[str, str, str, str], func: str, source: str) -> Owner:
    model, head, classification, regression = types
    if func == "forward" and _REGRESSION_SOURCE.search(source):
        return Owner(DENSE.regression, regression)
    if func == "forward" and _CLASSIFICATION_SOURCE.search(source):
        return Owner(DENSE.head, classification)
    if func == "compute_loss":
        return Owner("head", head)
    return Owner("", model)


def _ssd_owner(func: str, source: str) -> Owner:
    if func in ("forward", "_get_result_from_module_list") and "num_columns" in source:
        # SSDScoringHead serves both sub-heads; the classification one is where class counts go wrong
        return Owner(SSD.head, "SSDClassificationHead")
    return Owner("", "SSD")


def _rcnn_predictor_owner(name: str, source: str) -> Owner:
    if name == "mask_rcnn.py":
        return Owner(RCNN.mask_head, "MaskRCNNPredictor")
    if name == "keypoint_rcnn.py":
        return Owner(RCNN.keypoint_head, "KeypointRCNNPredictor")
    if "cls_score" in source or "bbox_pred" in source:
        return Owner(RCNN.head, "FastRCNNPredictor")
    if "fc6" in source or "fc7" in source or "flatten" in source:
        return Owner(RCNN.box_head, "TwoMLPHead")
    return Owner("", "FasterRCNN")


def _torchvision_vit_owner(func: str) -> Owner:
    if func == "_process_input":
        return Owner("", "VisionTransformer")
    return Owner("encoder", "Encoder") if func == "forward" else Owner("", "VisionTransformer")


def _timm_owner(rel: str, func: str) -> Owner | None:
    if rel == "layers/patch_embed.py":
        return Owner("patch_embed", "PatchEmbed")
    if rel == "layers/pos_embed.py" or func == "_pos_embed":
        return Owner("", "VisionTransformer")
    if rel == "layers/classifier.py":
        return Owner("head", "ClassifierHead")
    return None


def _torch_layer_owner(rel: str, source: str) -> Owner | None:
    """A torch layer says its type but not its place in the model (only the live objects know)."""
    kind = _TORCH_LAYERS.get(rel)
    if kind is None:
        return None
    call = _CONV_CALL.search(source) if kind == "Conv" else None
    if call is not None:
        kind = ("ConvTranspose" if "transpose" in call.group(1) else "Conv") + call.group(1)[-2:]
    return Owner(None, kind)
