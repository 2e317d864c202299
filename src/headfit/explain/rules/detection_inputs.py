"""What users pass to a torchvision detector: HF137 images that are not a list of ``[C, H, W]`` tensors
(a batch inside the list, channels-last or grayscale images) and HF116 targets that are not one dict of
tensors per image (the dataset's raw per-object annotations, a single dict, COCO keys, float labels).

torchvision's detectors take ``images: list[Tensor[C, H, W]]`` and ``targets: list[dict]`` with
``boxes`` float ``[N, 4]`` and ``labels`` int64 ``[N]``. The Python errors these mistakes raise
(``string indices must be integers``, ``KeyError: 'boxes'``) say nothing of detection: the traceback's
frames in ``torchvision/models/detection`` do, and these rules need them.
"""

from __future__ import annotations

import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import parse_ints, shape_str
from headfit.explain.engine import rule
from headfit.explain.frames import where
from headfit.explain.parse import Frame, ParsedError
from headfit.explain.rules._support import diagnose, parse_broadcast

IMAGES = "HF137"
TARGETS = "HF116"
ONE_DICT_PER_IMAGE = (
    "targets = [{'boxes': torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4), "
    "'labels': torch.as_tensor(labels, dtype=torch.int64)} for boxes, labels in per_image]"
)

_IMAGE_RANK = re.compile(
    r"images is expected to be a list of 3d tensors of shape \[C, H, W\], got torch\.Size\(\[(?P<dims>[\d, ]*)\]"
)
_LABEL_DTYPE = re.compile(r"target labels must of int64 type, instead got (?P<dtype>[\w.]+)")
_STR_INDEX = re.compile(r"string indices must be integers")
_LIST_INDEX = re.compile(r"list indices must be integers or slices, not str")
_KEY = re.compile(r"^'?(?P<key>boxes|labels|masks|keypoints)'?$")  # a live KeyError's message has no quotes
_LIST_RANGE = re.compile(r"list index out of range")
COCO_KEYS = "COCO annotation keys (`bbox` as x, y, w, h; `category_id`)"


def detection_frame(parsed: ParsedError, *files: str) -> Frame | None:
    """The innermost frame in ``torchvision/models/detection/<file>`` (any of ``files``)."""
    for frame in reversed(parsed.frames):
        rel = frame.library_file or ""
        if frame.library == "torchvision" and any(rel == f"models/detection/{f}" for f in files):
            return frame
    return None


# --- HF137: images -----------------------------------------------------------------------------------


@rule(IMAGES, priority=50, needs="images is expected to be a list of 3d tensors")
def image_rank(parsed: ParsedError) -> Diagnosis | None:
    m = _IMAGE_RANK.search(parsed.message)
    if not m:
        return None
    dims = parse_ints(m["dims"])
    facts = [
        f"a torchvision detector takes a list of [C, H, W] images; one item of the list is {shape_str(dims)}"
    ]
    if len(dims) == 4:
        causes = [
            Cause(
                f"a batched tensor {shape_str(dims)} was put inside the list: the list should hold its {dims[0]} images",
                0.85,
                fix="model(list(images))  # a [N, C, H, W] batch -> N tensors [C, H, W]; not model([images])",
            )
        ]
    elif len(dims) == 2:
        causes = [
            Cause(
                "a grayscale image without its channel axis",
                0.8,
                fix="image = image.unsqueeze(0).expand(3, -1, -1)  # [H, W] -> [3, H, W]; or Image.open(p).convert('RGB')",
            )
        ]
    else:
        causes = [
            Cause("the images are not [C, H, W] tensors", 0.6, fix="print([img.shape for img in images])")
        ]
    return diagnose(
        IMAGES, parsed, f"a detector got an image of shape {shape_str(dims)}, not [C, H, W]", facts, causes
    )


# before HF108's broadcast rule (priority 60)
@rule(IMAGES, priority=50, needs=("must match the size of tensor b", "Attempting to broadcast a dimension"))
def channels_last_image(parsed: ParsedError) -> Diagnosis | None:
    """``(image - mean[:, None, None])`` in the detector's transform, with an [H, W, 3] image: H meets 3."""
    normalize = detection_frame(parsed, "transform.py")
    found = parse_broadcast(parsed.message)
    if normalize is None or found is None or found.dim != 0 or found.b not in (1, 3):
        return None
    facts = [
        f"traceback shows the detector's own normalisation: {where(normalize)}",
        f"it subtracts a {found.b}-channel mean along dim 0 of each image; dim 0 of this image is {found.a}: "
        "the channels are in the last axis ([H, W, C], as PIL, OpenCV and NumPy give them)",
    ]
    causes = [
        Cause(
            f"the images are channels-last [H, W, {found.b}]: torchvision takes [C, H, W]",
            0.9,
            fix="image = image.permute(2, 0, 1)  # [H, W, C] -> [C, H, W]; or transforms.functional.to_tensor(pil_image)",
        )
    ]
    return diagnose(
        IMAGES,
        parsed,
        f"a detector got a channels-last image ({found.a} where {found.b} channels belong)",
        facts,
        causes,
    )


# --- HF116: targets ----------------------------------------------------------------------------------


@rule(TARGETS, priority=50, needs="target labels must of int64 type")
def float_labels(parsed: ParsedError) -> Diagnosis | None:
    m = _LABEL_DTYPE.search(parsed.message)
    if not m:
        return None
    dtype = m["dtype"].removeprefix("torch.")
    facts = [f"torchvision detectors need `labels` as int64 class indices; these are {dtype}"]
    made = (
        "from floats (a float array, or one tensor holding boxes and labels)"
        if dtype.startswith(("float", "half", "bfloat"))
        else f"as {dtype} (numpy's default int on Windows, or an explicit dtype)"
    )
    causes = [
        Cause(
            f"the labels were built {made}",
            0.85,
            fix="target['labels'] = torch.as_tensor(labels, dtype=torch.int64)",
        )
    ]
    return diagnose(TARGETS, parsed, "the detector's target labels are not int64", facts, causes)


@rule(
    TARGETS,
    priority=50,
    needs=(
        "string indices must be integers",
        "list indices must be integers or slices, not str",
        "boxes",
        "labels",
        "masks",
        "keypoints",
        "list index out of range",
    ),
)
def target_structure(parsed: ParsedError) -> Diagnosis | None:
    """A Python indexing error inside torchvision's detection code: the targets have another structure."""
    frame = detection_frame(
        parsed, "generalized_rcnn.py", "transform.py", "roi_heads.py", "retinanet.py", "fcos.py", "ssd.py"
    )
    if frame is None:
        return None
    message = parsed.message.strip()
    facts = [
        f"traceback shows torchvision's detector reading the targets: {where(frame)}",
        "targets must be a list with one dict per image: {'boxes': float [N, 4] (x1, y1, x2, y2), 'labels': int64 [N]}",
    ]
    if _STR_INDEX.search(message):
        summary, cause = _one_dict(facts)
    elif _LIST_INDEX.search(message):
        summary, cause = _per_object_lists(facts)
    elif m := _KEY.match(message):
        summary, cause = _missing_key(m["key"], facts)
    elif _LIST_RANGE.search(message):
        summary = "fewer targets than images were passed"
        cause = Cause(
            "the list of targets is shorter than the list of images (one dict per image)",
            0.75,
            fix="assert len(images) == len(targets); loss_dict = model(images, targets)",
        )
    else:
        return None
    return diagnose(TARGETS, parsed, summary, facts, [cause])


def _one_dict(facts: list[str]) -> tuple[str, Cause]:
    facts.append("iterating a dict gives its keys (strings), and `target['boxes']` on a string fails")
    return "the targets are one dict, not a list of dicts (one per image)", Cause(
        "a single target dict (or a dict of batched tensors) was passed where a list of dicts belongs",
        0.85,
        fix="loss_dict = model(images, [target])  # one image; for a batch: [{'boxes': b, 'labels': l} for b, l in zip(...)]",
    )


def _per_object_lists(facts: list[str]) -> tuple[str, Cause]:
    facts.append(
        "each item of `targets` is a list: the dataset's raw per-object annotations (one dict per object)"
    )
    return "each target is a list of per-object annotations, not one dict of tensors", Cause(
        "the dataset returns its annotation list (e.g. COCO's list of objects) as the target",
        0.85,
        fix=ONE_DICT_PER_IMAGE,
    )


def _missing_key(key: str, facts: list[str]) -> tuple[str, Cause]:
    facts.append(f"a target dict has no `{key}` key")
    if key == "boxes":
        return "the target dicts have no `boxes`", Cause(
            f"the targets carry other keys, such as {COCO_KEYS}, or `bboxes`",
            0.8,
            fix="target = {'boxes': torchvision.ops.box_convert(torch.as_tensor(bboxes, dtype=torch.float32), 'xywh', "
            "'xyxy'), 'labels': torch.as_tensor(category_ids, dtype=torch.int64)}",
        )
    return f"the target dicts have no `{key}`", Cause(
        f"this model needs `{key}` in every target",
        0.75,
        fix=f"target['{key}'] = ...  # see the model's docstring",
    )
