"""Producer evidence: follow the tensor a failing layer got back to the line of the user's code that
made it (its assignment in the calling frame: a ``view``, ``reshape``, ``flatten``, ``cat`` or a call)
and judge that line, so the fix goes where the tensor went wrong rather than into a pretrained layer.

A flatten of a feature map larger (or smaller) than the one the next Linear was built for is the
classic: the map's channels divide ``in_features``, so pooling (or interpolating) the map to the grid
the Linear expects is the fix, and rebuilding the Linear, which discards its trained weights, is last.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import math
import os
import textwrap
from dataclasses import dataclass
from types import FrameType

import torch
from torch import nn

from headfit.diagnosis import Cause
from headfit.evidence.base import LiveEvidence, finder
from headfit.explain.arith import fmt, shape_str
from headfit.modulepath import module_expr, module_name
from headfit.nnutil import layer_code
from headfit.scene import (
    MODULE_CALL_FUNCTIONS,
    Scene,
    failing_method_frame,
    forward_frame,
    frame_inputs,
    is_library,
    names_in,
)
from headfit.trace import trace

_RESHAPES = {"view", "reshape", "flatten"}


@dataclass(frozen=True)
class Producer:
    """The assignment in the user's frame that produced the failing layer's argument."""

    name: str  # the variable passed to the layer
    file: str
    line: int
    source: str
    kind: str  # "reshape", "cat" or "other"

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line} `{self.source}`"


@finder(code=None, priority=55)
def flatten_producer(scene: Scene, exc: BaseException) -> LiveEvidence | None:
    """A Linear got the wrong feature count from a flatten in the user's forward."""
    layer, path = scene.module, scene.module_path
    inputs = frame_inputs(failing_method_frame(scene))
    if not isinstance(layer, nn.Linear) or not inputs or path is None:
        return None
    arrived = list(inputs[0][1].shape)
    if len(arrived) != 2 or arrived[1] == layer.in_features:
        return None
    producer = producer_of(scene, layer)
    if producer is None:
        return None
    facts = [f"traceback shows {producer.where}: it produced `{producer.name}` {shape_str(arrived)}"]
    if producer.kind != "reshape":
        return LiveEvidence(facts, [])
    feature_map = _flattened_map(scene, arrived[1])
    grid = _grid_for(feature_map, layer.in_features) if feature_map else None
    if grid is None:
        return LiveEvidence(facts, [])
    causes = _pool_causes(scene, producer, feature_map, grid, layer)
    return LiveEvidence([*facts, _map_fact(feature_map, grid, path, layer)], causes, settles=True)


def producer_of(scene: Scene, module: nn.Module) -> Producer | None:
    """The assignment, in the user's frame that called ``module``, of the variable it was called with."""
    called = _called_with(scene, module)
    if called is None:
        return None
    caller, tree, start, name = called
    call_line = caller.f_lineno - start + 1
    assigned = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and node.lineno < call_line
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    ]
    if not assigned:
        return None
    node = max(assigned, key=lambda n: n.lineno)
    line = node.lineno + start - 1
    source = linecache.getline(caller.f_code.co_filename, line).strip()
    return Producer(name, caller.f_code.co_filename, line, source, _kind(node.value))


def _called_with(scene: Scene, module: nn.Module) -> tuple[FrameType, ast.AST, int, str] | None:
    """The user's frame that called ``module``, its syntax tree and first line, and the name of the
    variable the call passed; None where any of them cannot be read."""
    caller = _caller(scene, module)
    parsed = None if caller is None else _parsed(caller)
    if parsed is None:
        return None
    tree, start = parsed
    name = _argument_at(tree, caller.f_lineno - start + 1)
    return None if name is None else (caller, tree, start, name)


def _parsed(frame: FrameType) -> tuple[ast.AST, int] | None:
    """The syntax tree of the function (or module) ``frame`` runs, and its first line in the file."""
    try:
        if frame.f_code.co_name == "<module>":  # getsourcelines stops a module at its first block
            lines, start = linecache.getlines(frame.f_code.co_filename), 1
        else:
            lines, start = inspect.getsourcelines(frame.f_code)
        return ast.parse(textwrap.dedent("".join(lines))), start
    except (OSError, TypeError, SyntaxError):
        return None


def _caller(scene: Scene, module: nn.Module) -> FrameType | None:
    """The frame that called ``module`` (skipping ``nn.Module.__call__``), when it is the user's code."""
    own = forward_frame(scene, module)
    if own is None:
        return None
    index = scene.frames.index(own) - 1
    while index >= 0 and scene.frames[index].f_code.co_name in MODULE_CALL_FUNCTIONS:
        index -= 1
    caller = scene.frames[index] if index >= 0 else None
    return caller if caller is not None and not is_library(caller) else None


def _model_argument(scene: Scene) -> object:
    """What the user's code passed to the model, read in the calling frame: the model's own frame has
    reassigned its argument by the time the failure is read (``x = self.features(x)``)."""
    called = _called_with(scene, scene.model)
    return None if called is None else names_in(called[0]).get(called[3])


def _argument_at(tree: ast.AST, line: int) -> str | None:
    """The first argument, a plain name, of a call on ``line`` (``self.fc(x)`` -> ``x``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if node.args and isinstance(node.args[0], ast.Name):
                return node.args[0].id
    return None


def _kind(value: ast.expr) -> str:
    calls = [n for n in ast.walk(value) if isinstance(n, ast.Call)]
    names = {c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "") for c in calls}
    if names & _RESHAPES:
        return "reshape"
    return "cat" if "cat" in names else "other"


def _flattened_map(scene: Scene, features: int) -> list[int] | None:
    """The [N, C, H, W] feature map that was flattened into ``features`` per sample (a meta trace of the
    model at the live input's shape)."""
    image = _model_argument(scene)
    if not isinstance(image, torch.Tensor):
        return None
    calls = trace(scene.model, (image,)).calls
    maps = [
        c.output_shapes[0]
        for c in calls
        if c.returned and c.output_shapes and len(c.output_shapes[0]) == 4 and math.prod(c.output_shapes[0][1:]) == features
    ]
    return maps[-1] if maps else None


def _grid_for(feature_map: list[int], in_features: int) -> tuple[int, int] | None:
    """The H x W grid of ``feature_map``'s channels that makes ``in_features``, closest to its aspect."""
    channels, height, width = feature_map[1:]
    if in_features % channels:
        return None
    cells = in_features // channels
    pairs = [(h, cells // h) for h in range(1, cells + 1) if cells % h == 0]
    return min(pairs, key=lambda p: abs(math.log(p[0] / p[1]) - math.log(height / width)))


def _map_fact(feature_map: list[int], grid: tuple[int, int], path: str, layer: nn.Linear) -> str:
    channels = feature_map[1]
    return (
        f"the flatten's input is the {shape_str(feature_map)} feature map ({fmt(math.prod(feature_map[1:]))} "
        f"features per sample); `{module_name(path)}` was built for {fmt(layer.in_features)} = {channels} x {grid[0]} x {grid[1]}: "
        f"its map should be {grid[0]}x{grid[1]}, not {feature_map[2]}x{feature_map[3]}"
    )


def _pool_causes(
    scene: Scene, producer: Producer, feature_map: list[int], grid: tuple[int, int], layer: nn.Linear
) -> list[Cause]:
    path, name = scene.module_path, producer.name
    height, width = feature_map[2:]
    smaller = grid[0] > height or grid[1] > width
    resize = (
        f'torch.nn.functional.interpolate({name}, size={grid}, mode="bilinear")'
        if smaller
        else f"torch.nn.functional.adaptive_avg_pool2d({name}, {grid})"
    )
    fix = f"{name} = {resize}  # just before {producer.where}: the {grid[0]}x{grid[1]} map `{module_name(path)}` was built for"
    features = math.prod(feature_map[1:])
    return [
        Cause(
            f"{producer.where} flattens a {height}x{width} map where `{module_name(path)}` was built for {grid[0]}x{grid[1]}: "
            "the input images are not the size the model was built for",
            0.96,
            path,
            None,
            fix,
        ),
        Cause(
            f"rebuild `{module_name(path)}` for {fmt(features)} features (discards its pretrained weights)",
            0.3,
            path,
            "in_features",
            f"{module_expr(scene.prefix, path)} = {layer_code(layer, features, layer.out_features)}",
        ),
    ]
