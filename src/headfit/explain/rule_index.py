"""Which rule module may diagnose which message: per module, the literal needles of its rules.

Pure data, generated from the ``needs=`` of every ``@rule``: rewrite it with
``python scripts/write_rule_index.py`` after adding or changing a rule (``tests/test_explain_index.py``
checks that it is up to date). A module not listed here still works: it is imported for every message,
which only costs start-up time.
"""

from __future__ import annotations

NEEDLES: dict[str, tuple[str, ...]] = {
    "assign": (
        "doesn't match the broadcast shape",
        "cannot be broadcast to indexing result of shape",
        "The expanded size of the tensor",
        "inconsistent tensor size, expected tensor [",
    ),
    "conv": (
        "channels, but got",
        "(unbatched) or",
        "D input (got ",
        "(batch mode) tensor expected for input",
        "-dimensional input for ",
    ),
    "detection": (
        "Expected target boxes to be a tensor of shape",
        "Expected target boxes to be of type Tensor",
        "All bounding boxes should have positive height and width",
        "targets should not be none when in training mode",
        "The parameter '",
        "Anchors should be Tuple[Tuple[int]]",
        "split_with_sizes expects split_sizes to sum exactly to",
        "is out of bounds for dimension",
    ),
    "detection_inputs": (
        "images is expected to be a list of 3d tensors",
        "must match the size of tensor b",
        "Attempting to broadcast a dimension",
        "target labels must of int64 type",
        "string indices must be integers",
        "list indices must be integers or slices, not str",
        "boxes",
        "labels",
        "masks",
        "keypoints",
        "list index out of range",
    ),
    "device": (
        "Expected all tensors to be on the same device",
        "is not on the expected device",
    ),
    "dtype_device": (
        "expected scalar type ",
        "expected target dtype to be Long or Byte",
        "Expected object of ",
        "to have the same type as tensor for argument",
        "to have the same dtype",
        "must have the same dtype",
        "Found dtype ",
        "\" not implemented for '",
        "'indices' to have one of the following scalar types",
        "tensors used as indices must be",
        "Input type (",
    ),
    "einops_errors": ('-reduction pattern "',),
    "linear": (
        "mat1 and mat2 shapes cannot be multiplied",
        "must have same reduction dim",
        "mat1 dim 1 must match mat2 dim 0",
    ),
    "loss": (
        "to match target batch_size",
        "is out of bounds",
        "device-side assert triggered",
        "Assertion `t >= 0 && t < n_classes` failed",
        "cur_target >= 0 && cur_target < n_classes",
        "srcIndex < srcSelectDimSize",
        "multi-target not supported",
        "Expected floating point type for target with class probabilities",
        "input size (torch.Size(",
        "can't be cast to the desired output type",
    ),
    "norm": (
        "Expected more than 1 value per channel when training",
        "should contain",
    ),
    "pooling": (
        "Calculated padded input size per channel",
        "Output size is too small",
        "Invalid computed output size",
    ),
    "recurrent": (
        "must be equal to input_size",
        "Expected hidden size (",
        "Expected hidden[0] size (",
        "Expected hidden[1] size (",
        "Expected input to be 2D or 3D, got",
        "input must have 3 dimensions, got",
        "input, hx",
    ),
    "reshape": (
        "is invalid for input of",
        "don't multiply up to the size of dim",
        "only one dimension can be inferred",
        "cannot reshape tensor of 0 elements",
        "view size is not compatible with input tensor's size and stride",
    ),
    "state_dict": (
        "size mismatch for ",
        "due to incompatible shapes",
        "key(s) in state_dict: ",
        'key "',
        "keys in state_dict: ",
    ),
    "targets": (
        "only batches of spatial targets supported",
        "size mismatch (got input: [",
        "Expected target size [",
        "one_hot is only applicable to index tensor",
        "Class values must be smaller than num_classes",
        "Class values must be non-negative",
    ),
    "tensors": (
        "must match the size of tensor b",
        "Attempting to broadcast a dimension",
        "Sizes of tensors must match except in dimension",
        "stack expects each tensor to be equal size",
        "The expanded size of the tensor",
        "split_with_sizes expects split_sizes to sum exactly to",
    ),
    "vit": (
        "Wrong image ",
        "doesn't match model (",
        "must match the size of tensor b",
        "Attempting to broadcast a dimension",
    ),
    "windows": (
        "are not even",
        "input feature has wrong size",
    ),
}
