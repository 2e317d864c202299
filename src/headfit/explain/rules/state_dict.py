"""HF106 (a checkpoint's tensors have other shapes than the model's: usually a head for another class
count) and HF107 (keys missing/unexpected: a ``module.``-style prefix, a whole training checkpoint,
BatchNorm counters).

``load_state_dict`` lists every problem key in its message, so the diagnosis is computed from the key
names and shapes alone.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from headfit.diagnosis import Cause, Diagnosis
from headfit.explain.arith import fmt, parse_ints, shape_str
from headfit.explain.build import make_diagnosis
from headfit.explain.engine import rule
from headfit.explain.parse import ParsedError
from headfit.explain.rules._architecture import findings
from headfit.families._facts import COCO_CLASSES, DENSE, RCNN

_HEADER = re.compile(r"Error\(s\) in loading state_dict for (?P<model>[\w.]+)")
_SIZE = re.compile(
    r"size mismatch for (?P<key>\S+): copying a param with shape torch\.Size\(\[(?P<ckpt>[\d, ]*)\]\) "
    r"from checkpoint, the shape in current model is torch\.Size\(\[(?P<model>[\d, ]*)\]\)"
)
# detectron2/fvcore's checkpointer skips such tensors with a warning users paste as the error
_FVCORE_SIZE = re.compile(
    r"'(?P<key>[\w.]+)' to the model due to incompatible shapes: \((?P<ckpt>[\d, ]*)\) in the checkpoint "
    r"but \((?P<model>[\d, ]*)\) in the model"
)
_MISSING = re.compile(r"Missing key\(s\) in state_dict: (?P<keys>.*)")
# torch < 0.4 raised KeyError('unexpected key "x" in state_dict') / KeyError('missing keys in state_dict: "{...}"')
_OLD_UNEXPECTED = re.compile(r'unexpected key "(?P<key>[^"]+)" in state_dict')
_OLD_MISSING = re.compile(r'missing keys in state_dict: "\{(?P<keys>[^}]*)\}"')
_UNEXPECTED = re.compile(r"Unexpected key\(s\) in state_dict: (?P<keys>.*)")
_KEY = re.compile(r'"([^"]+)"')

# a module whose first output dimension is the class count (torchvision/timm/common names)
CLASS_LAYERS = (
    "fc",
    "classifier",
    "head",
    "cls_score",
    "cls_logits",
    "mask_fcn_logits",
    "logits",
    "last_linear",
)
# words that mark a class layer in other codebases' names: fc_cls, cls_headers, conv_logits, class_embed
_CLASS_WORDS = re.compile(r"cls|class|logits")
# layers of a head's MLP before its class layer: their widths are hidden sizes, not class counts
HIDDEN_NAMES = re.compile(r"^(?:fc[1-7]|pre_logits|hidden\w*|mlp\w*|proj|pre_\w+)$")
FOCAL_HEAD = DENSE.logits_path.removeprefix("head.")  # torchvision RetinaNet/FCOS: K columns, no background
BOX_LAYERS = (RCNN.regression.rpartition(".")[2],)  # 4 * classes (background included in torchvision's R-CNN)
COCO_WITH_BACKGROUND = COCO_CLASSES
# class counts of the datasets public checkpoints are trained on: ImageNet-1k/21k, COCO (with and without
# background, torchvision's 91 and EfficientDet's 90), Pascal VOC (with and without background)
PRETRAINING_COUNTS = (1000, 21843, 11221, 91, 90, 81, 80, 21, 20)
# boxes per location of dense detection heads, the most common first: a conv class layer emits A*K channels
ANCHOR_COUNTS = (1, 9, 6, 4, 3)
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.", "ema.", "model_ema.", "net.", "encoder.")
CHECKPOINT_ENTRIES = ("model", "state_dict", "model_state_dict", "model_ema", "ema", "net", "weights")
TRAINING_ENTRIES = ("optimizer", "epoch", "scheduler", "lr_scheduler", "args", "scaler", "step", "config")


@dataclass(frozen=True)
class Mismatch:
    key: str
    checkpoint: list[int]
    model: list[int]

    @property
    def module(self) -> str:
        return self.key.rsplit(".", 1)[0]

    @property
    def layer(self) -> str:
        return self.module.rsplit(".", 1)[-1]

    @property
    def only_outputs_differ(self) -> bool:
        """Same rank and the same sizes after dim 0: the layer's output count changed, nothing else."""
        return len(self.checkpoint) == len(self.model) >= 1 and self.checkpoint[1:] == self.model[1:]

    @property
    def is_class_layer(self) -> bool:
        parts = self.module.split(".")
        return self.layer not in BOX_LAYERS and any(
            p in CLASS_LAYERS or _CLASS_WORDS.search(p) for p in parts
        )

    @property
    def anchors(self) -> int | None:
        """A, when this is a dense head's conv emitting A*K channels per location: the A that makes the
        checkpoint's K a known dataset's class count, else 9 (RetinaNet/EfficientDet) when it divides both."""
        if len(self.checkpoint) < 3:
            return 1
        ckpt, model = self.checkpoint[0], self.model[0]
        for a in ANCHOR_COUNTS:
            if ckpt % a == 0 and model % a == 0 and ckpt // a in PRETRAINING_COUNTS:
                return a
        return 9 if ckpt % 9 == 0 and model % 9 == 0 else None

    def classes(self) -> tuple[int, int] | None:
        """(checkpoint classes, model classes) that this key's first dimension encodes, if any."""
        if not self.checkpoint or not self.model or not self.only_outputs_differ:
            return None
        if self.is_class_layer:
            a = self.anchors or 1
            return self.checkpoint[0] // a, self.model[0] // a
        if self.layer in BOX_LAYERS and self.checkpoint[0] % 4 == 0 and self.model[0] % 4 == 0:
            return self.checkpoint[0] // 4, self.model[0] // 4
        return None


def _model_name(message: str) -> str:
    match = _HEADER.search(message)
    return match["model"] if match else "the model"


# --- HF106 ---------------------------------------------------------------------------------------------


@rule("HF106", priority=30, needs=("size mismatch for ", "due to incompatible shapes"))
def state_dict_size_mismatch(parsed: ParsedError) -> Diagnosis | None:
    found = [*_SIZE.finditer(parsed.message), *_FVCORE_SIZE.finditer(parsed.message)]
    mismatches = [Mismatch(m["key"], parse_ints(m["ckpt"]), parse_ints(m["model"])) for m in found]
    if not mismatches:
        return None
    facts = [
        f"`{m.key}`: checkpoint {shape_str(m.checkpoint)}, model {shape_str(m.model)}" for m in mismatches
    ]
    architecture = findings(mismatches, parsed.message)
    explained = {key for f in architecture for key in f.keys}
    rest = [m for m in mismatches if m.key not in explained]
    reshaped = {m.module for m in rest if not m.only_outputs_differ}  # a kernel or width differs
    mlp = _mlp_head(rest)
    if mlp is not None:
        head, hidden = mlp
    else:
        head = [m for m in rest if m.classes() is not None and m.module not in reshaped and not _is_stem(m)]
        hidden = _hidden_layers(head, rest)
        head = [m for m in head if m not in hidden]
    other = [m for m in rest if m not in head and m not in hidden]
    causes = [c for f in architecture for c in f.causes]
    facts.extend(fact for f in architecture for fact in f.facts)
    summary = architecture[0].summary if architecture else None
    if head:
        ckpt_classes, model_classes = _class_counts(head, facts)
        causes.extend(_head_causes(head + hidden, ckpt_classes, model_classes, parsed.message))
        summary = summary or _head_summary(head, ckpt_classes, model_classes)
        if hidden:
            facts.append(
                f"`{hidden[0].module}` is a hidden layer of the head ({hidden[0].model[0]} outputs feed the next "
                "layer): its width is not a class count, but its tensors must go with the head's"
            )
    if summary is None:
        summary = f"{len(mismatches)} tensor{'s' if len(mismatches) > 1 else ''} of the checkpoint do not fit {_model_name(parsed.message)}"
    if other:
        causes.append(
            Cause(
                f"{len(other)} tensor{'s' if len(other) > 1 else ''} differ in more than a class count (e.g. "
                f"`{other[0].key}`: {shape_str(other[0].checkpoint)} vs {shape_str(other[0].model)}): the "
                "checkpoint is from another architecture or width",
                0.7 if not head and not architecture else 0.4,
                module=other[0].module,
                fix="load a checkpoint of the same architecture (the same builder and variant)",
            )
        )
    return make_diagnosis(parsed, "HF106", summary, facts, causes)


def _is_stem(m: Mismatch) -> bool:
    """A conv taking 1-4 channels reads the image: it is a network's first layer, not a classifier."""
    return len(m.checkpoint) == 4 and m.checkpoint[1] in (1, 2, 3, 4)


def _mlp_head(mismatches: list[Mismatch]) -> tuple[list[Mismatch], list[Mismatch]] | None:
    """A classifier MLP rebuilt with other hidden widths (VGG's ``classifier.0/3/6``): its last Linear differs in
    both dims, each earlier one feeds the next. (The last layer's tensors, the hidden layers' tensors.)"""
    for root in dict.fromkeys(m.module.split(".")[0] for m in mismatches):
        layers = [m for m in mismatches if m.module.split(".")[0] == root and len(m.model) == 2]
        if len({m.module for m in layers}) < 2 or not any(p in CLASS_LAYERS for p in root.split(".")):
            continue
        ordered = sorted({m.module for m in layers}, key=_natural)
        last = ordered[-1]
        weights = {m.module: m for m in layers}
        chained = all(weights[a].model[0] == weights[b].model[1] for a, b in itertools.pairwise(ordered))
        if not chained:
            continue
        head = [m for m in mismatches if m.module == last]
        hidden = [m for m in mismatches if m.module.split(".")[0] == root and m.module != last]
        return head, hidden
    return None


def _natural(module: str) -> list[int | str]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", module)]


def _hidden_layers(head: list[Mismatch], mismatches: list[Mismatch]) -> list[Mismatch]:
    """Layers of a head's MLP whose outputs feed another mismatched layer of it (their width is not a class
    count): in the model, another tensor of the same head root takes their output width as input width."""
    hidden = []
    for m in head:
        root = m.module.split(".")[0]
        consumers = [
            x
            for x in mismatches
            if x.module != m.module
            and x.module.split(".")[0] == root
            and len(x.model) >= 2
            and x.model[1] == m.model[0]
            and x.module > m.module
        ]
        if consumers or HIDDEN_NAMES.search(m.layer):
            hidden.append(m)
    return hidden if len(hidden) < len(head) else []


def _head_summary(head: list[Mismatch], ckpt_classes: int, model_classes: int) -> str:
    primary = _primary(head)
    if primary.is_class_layer and primary.anchors is None:
        return (
            f"the checkpoint's class layers emit {primary.checkpoint[0]} channels per location, the model's "
            f"{primary.model[0]}: a head for another class count (channels = anchors x classes)"
        )
    return f"the checkpoint's head is for {ckpt_classes} classes, the model's for {model_classes}"


def _primary(head: list[Mismatch]) -> Mismatch:
    return next((m for m in head if m.layer not in BOX_LAYERS), head[0])


def _class_counts(head: list[Mismatch], facts: list[str]) -> tuple[int, int]:
    primary = _primary(head)
    ckpt_classes, model_classes = primary.classes() or (primary.checkpoint[0], primary.model[0])
    by_rank = sorted(
        head, key=lambda m: len(m.checkpoint)
    )  # a module's weight (which shows A) after its bias
    for m in {m.module: m for m in by_rank}.values():
        a = m.anchors if m.is_class_layer else 1
        if a is not None and a > 1:
            facts.append(
                f"`{m.module}` is a conv emitting A*K channels per location: {fmt(m.checkpoint[0])} = {a}*"
                f"{m.checkpoint[0] // a} in the checkpoint, {fmt(m.model[0])} = {a}*{m.model[0] // a} in the model "
                f"({a} anchors)"
            )
        if m.layer in BOX_LAYERS:
            facts.append(
                f"`{m.key}` has 4*(K+1) outputs: {fmt(m.checkpoint[0])} = 4*{m.checkpoint[0] // 4} in the checkpoint, "
                f"{fmt(m.model[0])} = 4*{m.model[0] // 4} in the model"
            )
    per = "classes" if (primary.anchors or 1) > 1 else "outputs"
    facts.append(f"the checkpoint's head has {fmt(ckpt_classes)} {per}, the model's {fmt(model_classes)}")
    if ckpt_classes == COCO_WITH_BACKGROUND:
        facts.append("91 = torchvision's COCO classes with background (90 categories + 1)")
    return ckpt_classes, model_classes


def _head_causes(
    head: list[Mismatch], ckpt_classes: int, model_classes: int, message: str = ""
) -> list[Cause]:
    """Causes for a head of another class count; ``head`` holds every mismatched layer of it (the drop
    snippet must drop them all, hidden layers included)."""
    prefixes = sorted({m.module + "." for m in head})
    keep = ", ".join(f'"{p}"' for p in prefixes)
    module = head[0].module
    # torchvision's R-CNN and SSD heads count background; `headfit adapt --num-classes` takes object
    # classes. RetinaNet/FCOS (sigmoid focal loss, `classification_head.cls_logits`) count none.
    focal = any(m.module.endswith(FOCAL_HEAD) for m in head)
    with_background = not focal and (
        ckpt_classes == COCO_WITH_BACKGROUND or any(m.layer in BOX_LAYERS for m in head)
    )
    objects = model_classes - 1 if with_background else model_classes
    if _transformers(message):
        return _transformers_causes(module, ckpt_classes, model_classes, message)
    if ckpt_classes not in PRETRAINING_COUNTS or objects < 1:
        return _own_checkpoint_causes(module, keep, ckpt_classes, model_classes, objects)
    return [
        Cause(
            f"the checkpoint was trained for {ckpt_classes} classes; the model has a new head for {model_classes}: "
            "load everything but the head",
            0.9,
            module=module,
            fix=(
                f"state = {{k: v for k, v in state.items() if not k.startswith(({keep},))}}; "
                "model.load_state_dict(state, strict=False)"
            ),
        ),
        Cause(
            "let headfit load what fits and re-head the model",
            0.7,
            module=module,
            fix=f"headfit adapt MODEL --num-classes {objects} --weights CKPT -o OUT"
            + (f"  # {model_classes} outputs = {objects} classes + background" if with_background else ""),
        ),
        Cause(
            f"build the model for {ckpt_classes} classes, load the checkpoint strictly, then re-head it",
            0.5,
            module=module,
            fix=f"model = builder(num_classes={ckpt_classes}); model.load_state_dict(state); "
            f"headfit.adapt(model, {objects})",
        ),
    ]


def _transformers(message: str) -> bool:
    """Hugging Face's from_pretrained: its hint, or a model class named like its task heads."""
    return "ignore_mismatched_sizes" in message or bool(
        re.search(r"For[A-Z]\w*Classification\b", _model_name(message))
    )


def _transformers_causes(module: str, ckpt_classes: int, model_classes: int, message: str) -> list[Cause]:
    """Hugging Face names the fix itself: a new head for ``num_labels`` needs ``ignore_mismatched_sizes``."""
    model = _model_name(message)
    cls = model if model != "the model" else "AutoModelForImageClassification"
    return [
        Cause(
            f"a checkpoint with a {ckpt_classes}-label head loaded into a model with {model_classes} labels: "
            "from_pretrained re-initialises the head only when told to",
            0.9,
            module=module,
            fix=f"{cls}.from_pretrained(checkpoint, num_labels={model_classes}, ignore_mismatched_sizes=True)",
        ),
        Cause(
            f"to use the checkpoint's own {ckpt_classes} labels (inference with a fine-tuned model), do not pass num_labels",
            0.45,
            module=module,
            fix=f"{cls}.from_pretrained(checkpoint)  # keeps its id2label",
        ),
    ]


def _own_checkpoint_causes(
    module: str, keep: str, ckpt_classes: int, model_classes: int, objects: int
) -> list[Cause]:
    """A checkpoint for a class count no public dataset has is a fine-tuned model (often the user's own):
    loading it for inference or to resume needs a model built for that count, not a new head."""
    causes = [
        Cause(
            f"the checkpoint is a model fine-tuned for {ckpt_classes} classes, loaded into a model built for "
            f"{model_classes}: build the model with the checkpoint's class count",
            0.85,
            module=module,
            fix=f"model = builder(num_classes={ckpt_classes}); model.load_state_dict(state)"
            "  # the same num_classes as in training",
        ),
        Cause(
            f"the model really should have {model_classes} outputs: load everything but the head",
            0.5,
            module=module,
            fix=(
                f"state = {{k: v for k, v in state.items() if not k.startswith(({keep},))}}; "
                "model.load_state_dict(state, strict=False)"
            ),
        ),
    ]
    if objects >= 1:
        causes.append(
            Cause(
                "let headfit load what fits and re-head the model",
                0.4,
                module=module,
                fix=f"headfit adapt MODEL --num-classes {objects} --weights CKPT -o OUT",
            )
        )
    return causes


# --- HF107 ---------------------------------------------------------------------------------------------


@rule("HF107", priority=31, needs=("key(s) in state_dict: ", 'key "', "keys in state_dict: "))
def state_dict_key_mismatch(parsed: ParsedError) -> Diagnosis | None:
    missing, unexpected = _keys(_MISSING, parsed.message), _keys(_UNEXPECTED, parsed.message)
    if old := _OLD_UNEXPECTED.search(parsed.message):
        unexpected = [old["key"]]
    if old := _OLD_MISSING.search(parsed.message):
        missing = re.findall(r"'([^']+)'", old["keys"])
    if not missing and not unexpected:
        return None
    facts = [
        f"{len(missing)} missing key(s), {len(unexpected)} unexpected key(s) in {_model_name(parsed.message)}"
    ]
    facts.extend(
        f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    )
    causes = _key_causes(missing, unexpected, facts)
    summary = _key_summary(missing, unexpected)
    return make_diagnosis(parsed, "HF107", summary, facts, causes)


def _keys(pattern: re.Pattern[str], message: str) -> list[str]:
    match = pattern.search(message)
    return _KEY.findall(match["keys"]) if match else []


def _key_summary(missing: list[str], unexpected: list[str]) -> str:
    if missing and unexpected:
        return f"the checkpoint's keys do not match the model's ({len(missing)} missing, {len(unexpected)} unexpected)"
    if missing:
        return f"the checkpoint lacks {len(missing)} key(s) the model has"
    return f"the checkpoint has {len(unexpected)} key(s) the model does not"


def _key_causes(missing: list[str], unexpected: list[str], facts: list[str]) -> list[Cause]:
    causes = []
    entries = [k for k in unexpected if "." not in k]
    if entries and set(entries) & set(CHECKPOINT_ENTRIES + TRAINING_ENTRIES):
        entry = next((e for e in CHECKPOINT_ENTRIES if e in entries), entries[0])
        causes.append(
            Cause(
                f"the file is a training checkpoint (entries {', '.join(entries[:4])}), not a state_dict",
                0.9,
                fix=f'model.load_state_dict(torch.load(path, weights_only=True)["{entry}"])',
            )
        )
    prefix = _shared_prefix(unexpected, missing)
    if prefix is not None:
        facts.append(
            f"without the prefix `{prefix}`, {_matched(unexpected, missing, prefix)} of the {len(missing)} missing keys match"
        )
        causes.append(
            Cause(
                f"the checkpoint's keys carry a `{prefix}` prefix (saved from a wrapper: DataParallel, torch.compile, EMA, ...)",
                0.9,
                fix=f'state = {{k.removeprefix("{prefix}"): v for k, v in state.items()}}',
            )
        )
    alone = _wrapper_prefix(unexpected) if not missing else None
    if alone is not None:  # torch < 0.4 named only the first unexpected key, and no missing ones
        causes.append(
            Cause(
                f"the checkpoint's keys carry the `{alone}` prefix of DataParallel / torch.compile",
                0.75,
                fix=f'state = {{k.removeprefix("{alone}"): v for k, v in state.items()}}',
            )
        )
    prefix = _shared_prefix(missing, unexpected)
    if prefix is not None:
        causes.append(
            Cause(
                f"the model's keys carry a `{prefix}` prefix the checkpoint lacks (it was saved from the inner module)",
                0.85,
                fix=f'state = {{"{prefix}" + k: v for k, v in state.items()}}',
            )
        )
    every = missing + unexpected
    if every and all(k.endswith("num_batches_tracked") for k in every):
        causes.append(
            Cause(
                "only BatchNorm `num_batches_tracked` counters differ (another torch version, or FrozenBatchNorm2d "
                "which has none): harmless",
                0.9,
                fix="model.load_state_dict(state, strict=False)",
            )
        )
    if not causes:
        causes.append(
            Cause(
                "the checkpoint is from another architecture or variant",
                0.6,
                fix="load the checkpoint into the model it was saved from, or use `headfit adapt MODEL --weights CKPT`",
            )
        )
    return causes


def _wrapper_prefix(keys: list[str]) -> str | None:
    """``module.`` / ``_orig_mod.`` when every key starts with it: only a wrapper adds those."""
    for prefix in ("module.", "_orig_mod."):
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return None


def _shared_prefix(source: list[str], target: list[str]) -> str | None:
    """A prefix on ``source`` keys whose removal turns them into (most of) the ``target`` keys."""
    if not source or not target:
        return None
    candidates = list(WRAPPER_PREFIXES) + sorted({k.split(".", 1)[0] + "." for k in source if "." in k})
    for prefix in dict.fromkeys(candidates):
        if _matched(source, target, prefix) >= max(1, (len(target) * 9) // 10):
            return prefix
    return None


def _matched(source: list[str], target: list[str], prefix: str) -> int:
    stripped = {k[len(prefix) :] for k in source if k.startswith(prefix)}
    return len(stripped & set(target))
