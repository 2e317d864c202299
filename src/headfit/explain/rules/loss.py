"""Classification and BCE loss errors: HF109 batch sizes, HF110 labels out of range (and the CUDA
device-side assert they become on a GPU), HF111 multi-target, HF112 BCE target size / dtype."""

from __future__ import annotations

import math
import re

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, shape_str
from headfit.explain.engine import rule
from headfit.explain.frames import shows
from headfit.explain.parse import ParsedError
from headfit.explain.rules._support import diagnose, dtype_name, frames_mention, size_list, token_grid
from headfit.families._facts import RCNN

_BATCH = re.compile(r"Expected input batch_size \((\d+)\) to match target batch_size \((\d+)")
_TARGET = re.compile(r"Target (-?\d+) is out of bounds")
_CUDA_ASSERT = re.compile(
    r"device-side assert triggered|Assertion `t >= 0 && t < n_classes` failed|"
    r"cur_target >= 0 && cur_target < n_classes|srcIndex < srcSelectDimSize"
)
_MULTI_TARGET = re.compile(r"multi-target not supported")
_PROBABILITY_TARGET = re.compile(
    r"Expected floating point type for target with class probabilities, got (\w+)"
)
_BCE_SIZE = re.compile(
    r"(?:Using a target size|Target size) \(torch\.Size\(\[([\d, ]*)\]\)\) (?:that is different to|must be the same as) "
    r"(?:the )?input size \(torch\.Size\(\[([\d, ]*)\]?"
)
_RESULT_CAST = re.compile(r"result type (\w+) can't be cast to the desired output type (\w+)")

CUDA_ASYNC_FACT = (
    "CUDA errors are asynchronous: the line in the traceback is often not the one that failed; "
    "rerun with CUDA_LAUNCH_BLOCKING=1 or on the CPU to get the real message"
)


# --- HF109 ---------------------------------------------------------------------------------------


@rule("HF109", priority=60, needs="to match target batch_size")
def batch_size_mismatch(parsed: ParsedError) -> Diagnosis | None:
    """Rows of logits against targets: which axis was folded into the rows (or flattened into the targets)
    is read from the ratio of the two numbers and from the reshape the traceback shows."""
    m = _BATCH.search(parsed.message)
    if not m:
        return None
    logits, target = int(m[1]), int(m[2])
    facts = [f"the logits have {logits} rows, the target has {target} entries"]
    causes = [
        Cause(
            "the logits and the targets come from different batches (e.g. two loaders zipped, or the last batch)",
            0.25,
            fix="print(logits.shape, target.shape) right before the loss",
        )
    ]
    fold = shows(parsed, "fold")
    if fold is not None:
        facts.append(f"traceback shows a reshape that folds an axis into the rows: `{fold.source}`")
    if target > 0 and logits > target and logits % target == 0:
        causes.extend(_merged_into_batch(logits, target, facts, fold is not None))
    elif logits > 0 and target > logits and target % logits == 0:
        causes.extend(_targets_per_sample(target // logits, logits, target, facts))
    squeezed = shows(parsed, "squeeze")
    if squeezed is not None:
        causes.insert(
            0,
            Cause(
                f"`{squeezed.source}`: a squeeze() without a dim drops the batch of one (and class axes of 1)",
                0.7,
                fix="x.squeeze(-1)  # name the axis; keep the batch dimension",
            ),
        )
    return diagnose(
        "HF109",
        parsed,
        f"the loss got {logits} predictions for {target} targets",
        facts,
        causes,
    )


def _targets_per_sample(k: int, logits: int, target: int, facts: list[str]) -> list[Cause]:
    facts.append(f"{fmt(target)} = {k} x {fmt(logits)}: {k} targets per sample")
    causes = [
        Cause(
            f"the target has {k} values per sample (one-hot rows of {k} classes, or per-pixel labels) "
            "and was flattened, while the logits are per sample",
            0.6,
            fix="target = target.argmax(1)  # one-hot [N, C] -> class indices [N]",
        ),
        Cause(
            f"the task is multi-label: multi-hot targets [N, {k}] (several classes per sample) against a single-label "
            "cross-entropy",
            0.4,
            fix="loss = F.binary_cross_entropy_with_logits(logits, target.float())  # logits [N, C], targets [N, C] in 0/1",
        ),
    ]
    side = math.isqrt(k)
    if side * side == k and k > 4:
        causes.append(
            Cause(
                f"per-pixel targets [N, {side}, {side}] against per-image logits: a segmentation mask where the model "
                "classifies images",
                0.4,
                fix="use a segmentation head (logits [N, C, H, W]) or one label per image",
            )
        )
    return causes


def _merged_into_batch(logits: int, target: int, facts: list[str], fold_shown: bool = False) -> list[Cause]:
    """``logits = k * target``: k positions (a spatial map, tokens, time steps, frames) folded into the rows."""
    k = logits // target
    side = math.isqrt(k)
    facts.append(f"{fmt(logits)} = {k} x {fmt(target)}: {k} rows of logits per target")
    causes = []
    if side * side == k:
        facts.append(f"{k} = {side}x{side}: a {side}x{side} feature map folded into the batch")
        causes.append(
            Cause(
                f"`x.view(-1, C)` before the classifier merged the {side}x{side} spatial positions into the batch "
                "instead of flattening them into the features",
                0.75 if fold_shown else 0.7,
                fix=f"x = torch.flatten(x, 1)  # [N, C, {side}, {side}] -> [N, C*{k}]; the Linear needs in_features = C*{k}",
            )
        )
    grid = token_grid(k)
    if grid is not None and grid >= 7:  # the patch grids of real ViTs: 7x7 (224/32) and up
        facts.append(f"{k} = {grid}*{grid} + 1: a ViT's patch tokens and its class token")
        causes.append(
            Cause(
                f"a transformer's {k} tokens ({grid}x{grid} patches + the class token) were classified one by one: "
                "classify the class token (or the mean of the tokens)",
                0.7,
                fix="logits = head(x[:, 0])  # the class token; or head(x.mean(1))",
            )
        )
    causes.append(
        Cause(
            f"{k} positions of each sample (sequence tokens, time steps, frames of a clip) were folded into the rows "
            "by a reshape, while the targets are one per sample",
            0.6 if fold_shown and side * side != k else 0.45,
            fix=f"pool the {k} positions per sample before the loss (x.view(N, {k}, -1).mean(1)), or give one target "
            f"per position: target.repeat_interleave({k})",
        )
    )
    causes.append(
        Cause(
            f"per-pixel (segmentation) logits [N, C, H, W] with H*W = {k} were reshaped to rows, but the targets are one label per image",
            0.45 if side * side == k else 0.3,
            fix="use one label per pixel (target of shape [N, H, W]) with F.cross_entropy(logits, target), "
            "or pool the logits to [N, C] first: logits.mean((2, 3))",
        )
    )
    return causes


# --- HF110 ---------------------------------------------------------------------------------------


@rule("HF110", priority=60, needs="is out of bounds")
def target_out_of_bounds(parsed: ParsedError) -> Diagnosis | None:
    m = _TARGET.search(parsed.message)
    if not m:
        return None
    label = int(m[1])
    if label < 0:
        return _negative_label(parsed, label)
    facts = [
        f"a label of {label} needs at least {label + 1} classes (labels run 0..C-1), so the logits have {label} columns or fewer"
    ]
    detector = _detector_context(parsed)
    causes = [*_mask_value_causes(label, facts)]
    if detector is not False:
        causes.append(_background_cause(label, confident=detector is True))
    if label == 1 and detector is not True:
        facts.append(
            "a label of 1 out of bounds means a 1-output head: cross-entropy over one class learns nothing"
        )
        causes.append(
            Cause(
                "a one-class head: one object class needs 2 outputs (a torchvision detector's num_classes=1 is the "
                "background alone; a binary classifier with cross-entropy needs 2 logits, or BCE with 1)",
                0.5,
                fix="num_classes=2  # detector: 1 object class + background; classifier: nn.Linear(in_features, 2), or "
                "F.binary_cross_entropy_with_logits(logits.squeeze(1), target.float()) with 1 output",
            )
        )
    causes += [
        Cause(
            f"the head was built for fewer classes than the dataset has (num_classes left at a default, or "
            f"re-headed for a subset); it needs >= {label + 1} outputs",
            0.45,
            fix=f"headfit adapt MODEL --num-classes {label + 1}  # or build the head with num_classes = max label + 1",
        ),
        Cause(
            f"the labels are 1-based (1..{label}) but the head has {label} outputs for labels 0..{label - 1}",
            0.4,
            fix="target = target - 1",
        ),
    ]
    return diagnose("HF110", parsed, f"target label {label} is not a valid class index", facts, causes)


def _detector_context(parsed: ParsedError) -> bool | None:
    """True: the traceback shows a torchvision R-CNN's loss; False: it shows another context (the user's
    own loss call); None: no traceback, or one cut before any frame that would say."""
    if frames_mention(parsed, "roi_heads.py", "fastrcnn_loss", "models/detection/"):
        return True
    if any(not f.library for f in parsed.frames):
        return False
    return None


def _background_cause(label: int, confident: bool) -> Cause:
    """torchvision's R-CNN heads count the background as class 0: K object classes need num_classes = K + 1."""
    if confident:
        summary = (
            f"`num_classes` forgot the background: torchvision's R-CNN box predictor counts it as class 0, so object "
            f"labels 1..{label} need num_classes = {label} + 1 = {label + 1}"
        )
    else:
        summary = (
            f"if this is a torchvision detector: it counts the background as class 0, so object labels up to "
            f"{label} need num_classes = {label + 1}"
        )
    return Cause(
        summary,
        0.85 if confident else 0.3,
        module=RCNN.head,
        attribute="num_classes",
        fix=f"model.{RCNN.head} = FastRCNNPredictor(model.{RCNN.head}.cls_score.in_features, {label + 1})",
    )


def _negative_label(parsed: ParsedError, label: int) -> Diagnosis:
    """A negative label is an ignore marker, or a real class shifted below 0: ignoring it would drop that
    class silently, so both readings are given with the way to tell them apart."""
    facts = [
        f"the loss needs labels in 0..C-1 (and ignores -100 by default); {label} is either a marker or a shifted class",
        f"to tell them apart: torch.unique(target, return_counts=True); a marker covers padding or unlabeled "
        f"positions while the other labels still span 0..C-1, a shift leaves the labels spanning {label}..C-{1 - label} "
        "with no label C-1",
    ]
    causes = [
        Cause(
            f"{label} marks pixels/samples to ignore, but the loss ignores -100 by default",
            0.6,
            fix=f"F.cross_entropy(logits, target, ignore_index={label})  # or nn.CrossEntropyLoss(ignore_index={label})",
        ),
        Cause(
            f"a real class was shifted to {label} (0-based labels converted to 0-based again, `label - 1` applied twice): "
            "ignoring it would silently drop that class from training",
            0.5,
            fix="fix the label mapping so labels run 0..C-1: assert target.min() >= 0",
        ),
    ]
    return diagnose("HF110", parsed, f"a target label is {label}, below 0", facts, causes)


def _mask_value_causes(label: int, facts: list[str]) -> list[Cause]:
    """Labels of 100..255 are rarely class counts: they are the pixel values of a mask image read as labels.
    255 is also the ignore value of VOC and Cityscapes masks: both readings, and how to tell them apart."""
    if label == 255:
        facts.append(
            "255 is the 'ignore' / boundary value of Pascal VOC and Cityscapes masks, and the object value of "
            "binary masks saved as 0/255 images: torch.unique(mask) gives {0, 255} only for the latter"
        )
        return [
            Cause(
                "the masks mark pixels to ignore with 255, but the loss ignores -100 by default",
                0.7,
                fix="F.cross_entropy(logits, target, ignore_index=255)  # or nn.CrossEntropyLoss(ignore_index=255)",
            ),
            Cause(
                "the masks are binary images saved as 0/255: the object pixels are 255, not class 1",
                0.55,
                fix="mask = (mask > 127).long()  # 0/255 -> 0/1",
            ),
        ]
    if 100 <= label < 255:
        facts.append(f"{label} fits in a byte (0..255): it looks like a pixel value, not a class index")
        return [
            Cause(
                "the segmentation masks hold grayscale pixel values (0..255), not class indices 0..C-1",
                0.6,
                fix="mask = torch.as_tensor(np.array(Image.open(path)), dtype=torch.long)  # then map values to classes, "
                "e.g. mask = (mask > 127).long() for a binary mask",
            )
        ]
    return []


_CUDA_WORDS = re.compile(r"CUDA|cuda|device-side|block: \[|thread: \[")


@rule(
    "HF110",
    priority=60,
    needs=(
        "device-side assert triggered",
        "Assertion `t >= 0 && t < n_classes` failed",
        "cur_target >= 0 && cur_target < n_classes",
        "srcIndex < srcSelectDimSize",
    ),
)
def cuda_device_side_assert(parsed: ParsedError) -> Diagnosis | None:
    m = _CUDA_ASSERT.search(parsed.message)
    if not m:
        return None
    on_cuda = _CUDA_WORDS.search(parsed.message) is not None
    facts = [CUDA_ASYNC_FACT] if on_cuda else []
    detector = _detector_context(parsed)
    background = (
        "; a torchvision detector needs num_classes = K + 1 for the background"
        if detector is not False
        else ""
    )
    where = "the CUDA form" if on_cuda else "how torch < 1.5 worded it on the CPU"
    causes = [
        Cause(
            f"a class label is >= num_classes or negative ({where} of `Target N is out of bounds`){background}",
            0.7,
            fix="assert target.min() >= 0 and target.max() < num_classes, (target.min(), target.max(), num_classes)",
        ),
        Cause(
            "an index (embedding id, gather/index_select index) is past the end of the tensor it indexes",
            0.35 if "srcIndex" in m[0] else 0.2,
            fix="assert idx.max() < embedding.num_embeddings",
        ),
        Cause(
            "-1 used as an 'ignore' label while the loss ignores -100",
            0.3,
            fix="F.cross_entropy(logits, target, ignore_index=-1)",
        ),
    ]
    if detector is True:
        causes.insert(0, _background_cause_unknown_label())
    if "srcIndex" in m[0]:
        causes[0], causes[1] = causes[1], causes[0]
        causes[0].confidence, causes[1].confidence = 0.6, 0.5
        facts.append(
            "`srcIndex < srcSelectDimSize` is index_select/embedding: an index >= the indexed dimension"
        )
    elif "cur_target" in m[0]:
        facts.append(
            "`cur_target >= 0 && cur_target < n_classes` is the CPU check of torch < 1.5 for NLL/cross-entropy labels"
        )
    elif "n_classes" in m[0]:
        facts.append("`t >= 0 && t < n_classes` is the NLL/cross-entropy kernel's label check")
    summary = (
        "a CUDA kernel asserted: almost always a label or index out of range"
        if on_cuda
        else ("the loss's label check failed: a label outside 0..C-1")
    )
    return diagnose("HF110", parsed, summary, facts, causes)


def _background_cause_unknown_label() -> Cause:
    return Cause(
        "`num_classes` forgot the background: torchvision's R-CNN box predictor counts it as class 0, so K object "
        "classes need num_classes = K + 1",
        0.8,
        module=RCNN.head,
        attribute="num_classes",
        fix=f"model.{RCNN.head} = FastRCNNPredictor(model.{RCNN.head}.cls_score.in_features, K + 1)",
    )


# --- HF111 ---------------------------------------------------------------------------------------


@rule("HF111", priority=60, needs="multi-target not supported")
def multi_target(parsed: ParsedError) -> Diagnosis | None:
    if not _MULTI_TARGET.search(parsed.message):
        return None
    other = _other_loss(parsed)
    if other is not None:
        return diagnose(
            "HF111",
            parsed,
            f"`{other}` got a 2D target; it takes one value per sample",
            [f"`{other}` raised it (not cross-entropy): its target must be 0D or 1D, one entry per sample"],
            [Cause(f"the target of `{other}` has an extra axis", 0.6, fix="target = target.view(-1)")],
        )
    facts = [
        "cross-entropy / NLL take class indices: a target of shape [N] (int64) for logits [N, C]",
        "a 2D target [N, 1] or a one-hot [N, C] is read as several targets per sample",
    ]
    causes = [
        Cause(
            "the target has shape [N, 1] (labels read as a column)",
            0.5,
            fix="loss = F.cross_entropy(logits, target.squeeze(1))",
        ),
        Cause("the target is one-hot [N, C]", 0.45, fix="loss = F.cross_entropy(logits, target.argmax(1))"),
        Cause(
            "the task is multi-label (several classes per sample): that is a BCE loss, not cross-entropy",
            0.2,
            fix="loss = F.binary_cross_entropy_with_logits(logits, target.float())",
        ),
    ]
    return diagnose(
        "HF111", parsed, "cross-entropy got a 2D target; it needs one class index per sample", facts, causes
    )


def _other_loss(parsed: ParsedError) -> str | None:
    """The loss in ``torch/nn/functional.py`` that raised, when it is not cross-entropy / NLL (e.g.
    ``cosine_embedding_loss`` raises the same words)."""
    for frame in reversed(parsed.frames):
        if frame.library_file == "nn/functional.py" and frame.function:
            return None if frame.function in ("cross_entropy", "nll_loss") else frame.function
    return None


@rule("HF111", priority=60, needs="Expected floating point type for target with class probabilities")
def integer_one_hot_target(parsed: ParsedError) -> Diagnosis | None:
    m = _PROBABILITY_TARGET.search(parsed.message)
    if not m:
        return None
    facts = [
        "a target with the logits' shape [N, C] is read as class probabilities, which must be float",
        f"this one is {dtype_name(m[1])}: one-hot rows of integers",
    ]
    causes = [
        Cause(
            "the target is one-hot [N, C]; cross-entropy wants class indices",
            0.7,
            fix="loss = F.cross_entropy(logits, target.argmax(1))",
        ),
        Cause(
            "the target really is a distribution (soft labels, mixup)",
            0.3,
            fix="loss = F.cross_entropy(logits, target.float())",
        ),
    ]
    return diagnose(
        "HF111",
        parsed,
        "cross-entropy got an integer target of the logits' shape (one-hot rows)",
        facts,
        causes,
    )


_IN_PLACE = re.compile(r"\.[a-z]\w*_\(|[-+*/]=")


def _in_place_source(parsed: ParsedError) -> str | None:
    """The failing line when it is an in-place op (``x.clamp_(...)``, ``x += y``), else None."""
    source = parsed.frames[-1].source if parsed.frames else None
    return source if source and _IN_PLACE.search(source) and "binary_cross_entropy" not in source else None


# --- HF112 ---------------------------------------------------------------------------------------


@rule("HF112", priority=60, needs="input size (torch.Size(")
def bce_target_size(parsed: ParsedError) -> Diagnosis | None:
    m = _BCE_SIZE.search(parsed.message)
    if not m:
        return None
    target, logits = size_list(m[1]), size_list(m[2])
    facts = [f"BCE compares elementwise: target {shape_str(target)} against input {shape_str(logits)}"]
    return diagnose(
        "HF112",
        parsed,
        f"the BCE target has shape {shape_str(target)} but the input has {shape_str(logits)}",
        facts,
        _bce_causes(target, logits, facts),
    )


def _bce_causes(target: list[int], logits: list[int], facts: list[str]) -> list[Cause]:
    if logits == [*target, 1]:
        return [
            Cause(
                "a single-logit head gives [N, 1] while the labels are [N]",
                0.8,
                fix="loss = F.binary_cross_entropy_with_logits(logits, target.unsqueeze(1).float())  # or logits.squeeze(1)",
            )
        ]
    if target == [*logits, 1]:
        return [
            Cause(
                "the labels are a column [N, 1] while the logits are [N]",
                0.8,
                fix="target = target.squeeze(1).float()",
            )
        ]
    if len(logits) == 2 and target == logits[:1]:
        c = logits[1]
        return [
            Cause(
                f"the head has {c} outputs per sample but the target holds one class index per sample",
                0.6,
                fix=f"target = F.one_hot(target, num_classes={c}).float()  # multi-label BCE",
            ),
            Cause(
                f"single-label classification over {c} classes is cross-entropy, not BCE",
                0.5,
                fix="loss = F.cross_entropy(logits, target)",
            ),
        ]
    if (
        len(target) == len(logits) >= 3
        and target[0] == logits[0]
        and target[2:] == logits[2:]
        and target[1] != logits[1]
    ):
        facts.append(
            f"dim 1 differs: the targets have {target[1]} channels (one-hot masks of {target[1]} classes), the logits "
            f"{logits[1]} (the class conv's out_channels)"
        )
        return [
            Cause(
                f"one-hot targets for {target[1]} classes against a final class conv built for {logits[1]}: make that "
                f"conv emit {target[1]} channels (the segmentation head's last conv, e.g. smp's `segmentation_head[0]`, "
                f"torchvision DeepLabV3's `classifier[4]`)",
                0.7,
                attribute="out_channels",
                fix=f"the last conv: nn.Conv2d(in_channels, {target[1]}, kernel_size=1)  # or build the model with "
                f"classes={target[1]}",
            ),
            Cause(
                f"the masks were one-hot encoded with another class count than the model's {logits[1]}",
                0.45,
                fix=f"F.one_hot(mask, num_classes={logits[1]}).permute(0, 3, 1, 2).float()",
            ),
        ]
    if math.prod(target) == math.prod(logits):
        facts.append(f"both hold {fmt(math.prod(target))} elements")
        return [Cause("same elements, different layout", 0.6, fix="target = target.view_as(logits).float()")]
    return [
        Cause(
            "the head's output shape is not the target's (another class count, or logits from another batch)",
            0.4,
            fix="print(logits.shape, target.shape) before the loss and make the head emit the target's shape",
        )
    ]


@rule("HF112", priority=60, needs="can't be cast to the desired output type")
def bce_integer_target(parsed: ParsedError) -> Diagnosis | None:
    m = _RESULT_CAST.search(parsed.message)
    if not m:
        return None
    result, output = m[1], m[2]
    facts = [f"the computation produces {result} but writes into a {output} tensor"]
    in_place = _in_place_source(parsed)
    causes = [
        Cause(
            f"BCE with integer ({output}) targets: `binary_cross_entropy_with_logits` needs float targets",
            0.3 if in_place else 0.6,
            fix="loss = F.binary_cross_entropy_with_logits(logits, target.float())",
        ),
        Cause(
            f"an in-place op (`+=`, `*=`, `add_`, `clamp_`) on a {output} tensor with a {result} operand",
            0.75 if in_place else 0.35,
            fix=f"x.add_(y.to(x.dtype)), x.clamp_(0, int(bound))  # give the {result} operand the {output} tensor's dtype; "
            f"or go out of place: x = x + y",
        ),
    ]
    return diagnose(
        "HF112", parsed, f"a {result} result cannot be stored in a {output} tensor", facts, causes
    )
