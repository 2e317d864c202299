"""``plots``: PR curves and the predictions grid are real PNGs of the expected layout; boxes are drawn
in their class's color where they are."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from evaluation_support import random_set
from headfit.datasets import read, synth
from headfit.datasets.records import ClassMap
from headfit.evaluation import Detections, evaluate_detections
from headfit.evaluation.plots import (
    PALETTE,
    TRUE_COLOR,
    draw_detections,
    draw_predictions_grid,
    plot_pr_curves,
)


def test_pr_curves_are_a_png_with_a_curve_per_class(tmp_path):
    dataset, detections = random_set(0)
    path = plot_pr_curves(evaluate_detections(dataset, detections), tmp_path / "plots" / "pr.png")
    with Image.open(path) as image:
        assert image.size == (840, 660)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    for color in PALETTE[:3]:  # each of the 3 classes' curves is drawn in its color
        assert (np.abs(pixels.astype(int) - color).sum(axis=1) < 30).sum() > 50, color


def test_pr_curves_without_ground_truth_still_write_a_plot(tmp_path):
    dataset, _ = random_set(1, images=1)
    dataset.images[0].boxes = np.zeros((0, 4), np.float32)
    dataset.images[0].category_ids = np.zeros(0, np.int64)
    dataset.images[0].crowd = np.zeros(0, bool)
    assert plot_pr_curves(evaluate_detections(dataset, []), tmp_path / "pr.png").stat().st_size > 1000


def test_the_grid_shows_true_and_predicted_boxes(tmp_path):
    train, _ = synth(tmp_path / "data", images=12, classes=3, size=64)
    dataset = read(train)
    found = [
        Detections(r.image_id, r.boxes + 4, np.full(r.num_boxes, 0.9), r.category_ids) for r in dataset.images
    ]
    path = draw_predictions_grid(dataset, found, tmp_path / "grid.png", n=5)
    with Image.open(path) as image:
        assert image.size == (1200, 800)  # 5 images: 3 columns, 2 rows of 4 x 4 inches at 100 dpi
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    near = {color: (np.abs(pixels - color).sum(axis=1) < 40).sum() for color in (TRUE_COLOR, *PALETTE[:3])}
    assert all(count > 100 for count in near.values()), near


def test_draw_detections_puts_each_box_in_its_class_color():
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    classes = ClassMap(ids=[4, 9], names=["cat", "dog"])
    drawn = draw_detections(
        image, np.array([[10, 50, 40, 90], [60, 60, 95, 95]]), [0.9, 0.8], [9, 4], classes
    )
    assert tuple(drawn[:, 70, 10].tolist()) == PALETTE[1]  # the left edge of the dog's box
    assert tuple(drawn[:, 80, 95].tolist()) == PALETTE[0]  # the right edge of the cat's box
    assert drawn[:, 5:45, 20:30].sum() == 0  # nothing drawn inside the boxes but the label tab


def test_the_best_scored_box_is_drawn_last_so_its_label_stays_on_top():
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    classes = ClassMap(ids=[4, 9], names=["cat", "dog"])
    same_box = np.array([[10, 30, 90, 90], [10, 30, 90, 90]])
    for scores, categories in (([0.3, 0.9], [4, 9]), ([0.9, 0.3], [9, 4])):  # the dog scores best either way
        drawn = draw_detections(image, same_box, scores, categories, classes)
        assert (
            tuple(drawn[:, 43, 12].tolist()) == PALETTE[1]
        )  # the label tab's background, just under the text
