"""``evaluate_detections``: the same numbers as pycocotools (to 1e-6) on fixed detections, and COCO's
rules for crowd boxes, empty images, class-id gaps, string ids and dense images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation_support import coco_mean, pycocotools_eval, random_set, reference_ids
from headfit.datasets.records import ClassMap, DetectionDataset, ImageRecord
from headfit.errors import UsageError
from headfit.evaluation import Detections, detections_per_image_for, evaluate_detections, max_dets_for

TOLERANCE = 1e-6


def assert_same_as_pycocotools(dataset, detections, max_dets=None):
    report = evaluate_detections(dataset, detections, max_dets=max_dets)
    reference = pycocotools_eval(dataset, detections, _max_dets_list(report.max_dets))
    precision = reference.eval["precision"][:, :, :, 0, -1]  # area all, the last maxDets
    expected = {
        "AP": coco_mean(precision),
        "AP50": coco_mean(precision[0]),
        "AP75": coco_mean(precision[5]),
        "APs": coco_mean(reference.eval["precision"][:, :, :, 1, -1]),
        "APm": coco_mean(reference.eval["precision"][:, :, :, 2, -1]),
        "APl": coco_mean(reference.eval["precision"][:, :, :, 3, -1]),
        "AR100": coco_mean(reference.eval["recall"][:, :, 0, reference.params.maxDets.index(100)]),
    }
    for name, value in expected.items():
        got = getattr(report, name)
        assert (got is None) == (value is None), name
        if value is not None:
            assert abs(got - value) <= TOLERANCE, (name, got, value)
    by_reference = reference_ids(dataset.classes.ids)
    columns = [reference.params.catIds.index(by_reference[c]) for c in dataset.classes.ids]
    precision = precision[:, :, columns]  # pycocotools orders classes by id, the report as the class map
    for k, row in enumerate(report.per_class):
        ap, ap50 = coco_mean(precision[:, :, k]), coco_mean(precision[0, :, k])
        assert (row.AP is None) == (ap is None) and (row.AP50 is None) == (ap50 is None), row
        if ap is not None:
            assert abs(row.AP - ap) <= TOLERANCE and abs(row.AP50 - ap50) <= TOLERANCE, (row, ap, ap50)
    np.testing.assert_allclose(report.precision, precision, atol=TOLERANCE)
    return report, reference


def _max_dets_list(max_dets: int) -> list[int]:
    return [1, 10, 100] if max_dets == 100 else [1, 10, 100, max_dets]


def test_the_default_maxdets_summary_equals_pycocotools_stats():
    dataset, detections = random_set(0, images=16)
    report, reference = assert_same_as_pycocotools(dataset, detections)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        reference.summarize()
    stats = reference.stats  # pycocotools' own summary: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100
    got = [report.AP, report.AP50, report.AP75, report.APs, report.APm, report.APl, report.AR100]
    for value, want in zip(got, [*stats[:6], stats[8]], strict=True):
        assert (value if value is not None else -1.0) == pytest.approx(want, abs=TOLERANCE)
    assert report.max_dets == 100 and not report.raised_max_dets
    assert 0.05 < report.AP < 0.95  # a real mix of hits and misses, not a degenerate case


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_class_id_gaps_crowd_boxes_and_empty_images_equal_pycocotools(seed):
    dataset, detections = random_set(seed, class_ids=(1, 3, 7, 12))
    assert any(r.crowd.any() for r in dataset.images)
    assert any(r.num_boxes == 0 for r in dataset.images)
    assert len(detections) < len(dataset.images)  # some images have no detections
    report, _ = assert_same_as_pycocotools(dataset, detections)
    assert [c.id for c in report.per_class] == [1, 3, 7, 12]


def test_a_class_map_out_of_id_order_reports_each_class_by_its_own_row():
    dataset, detections = random_set(7, class_ids=(7, 1, 12, 3))
    report, _ = assert_same_as_pycocotools(dataset, detections)
    assert [c.id for c in report.per_class] == [7, 1, 12, 3]
    assert len({c.AP for c in report.per_class}) == 4  # distinct rows, so a mix-up would show


def test_string_image_and_class_ids_equal_pycocotools():
    dataset, detections = random_set(4, class_ids=("car", "person", "tree"), string_ids=True)
    report, _ = assert_same_as_pycocotools(dataset, detections)
    assert [c.id for c in report.per_class] == ["car", "person", "tree"]


def test_dense_images_raise_maxdets_and_equal_pycocotools_there():
    dataset, detections = random_set(5, images=9, dense_every=3, dense_boxes=160)
    most = max(int((r.category_ids == 1).sum()) for r in dataset.images)
    assert 120 <= most <= 150
    assert max_dets_for(dataset) == 300  # the smallest multiple of 100 >= 2 * the most boxes of one class
    assert detections_per_image_for(dataset) == 400  # torchvision's cap counts all classes: 160 boxes
    report, _ = assert_same_as_pycocotools(dataset, detections)
    assert report.raised_max_dets and report.max_ground_truth == most and report.AR_max is not None
    at_100 = evaluate_detections(dataset, detections, max_dets=100)
    assert at_100.AP < report.AP  # 100 detections cannot find 140+ objects: COCO's default undercounts
    assert report.AR_max > report.AR100


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), images=st.integers(1, 8))
def test_any_fixed_set_equals_pycocotools(seed, images):
    dataset, detections = random_set(seed, images=images)
    if sum(len(d) for d in detections) == 0:
        return  # pycocotools' loadRes cannot take an empty result list
    assert_same_as_pycocotools(dataset, detections)


def _one_image(boxes, categories, crowd=None) -> DetectionDataset:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    record = ImageRecord(
        image_id=1,
        file=Path("a.jpg"),
        width=100,
        height=100,
        boxes=boxes,
        category_ids=np.asarray(categories, dtype=np.int64),
        crowd=np.asarray(crowd if crowd is not None else [False] * len(boxes)),
    )
    return DetectionDataset([record], ClassMap([1, 2], ["cat", "dog"]), Path("mem"), "coco")


def test_perfect_detections_score_one_and_a_class_without_ground_truth_is_none():
    dataset = _one_image([[10, 10, 50, 50], [60, 60, 90, 95]], [1, 1])
    found = Detections(1, dataset.images[0].boxes, [0.9, 0.8], [1, 1])
    report = evaluate_detections(dataset, [found])
    assert report.AP == pytest.approx(1.0) and report.AP50 == pytest.approx(1.0)
    cat, dog = report.per_class
    assert (cat.name, cat.ground_truth, cat.detections, cat.AP) == ("cat", 2, 2, pytest.approx(1.0))
    assert (dog.name, dog.ground_truth, dog.AP, dog.AP50) == ("dog", 0, None, None)
    assert report.to_dict()["per_class"][1] == {
        "name": "dog",
        "id": 2,
        "AP": None,
        "AP50": None,
        "ground_truth": 0,
        "detections": 0,
    }


def test_no_detections_at_all_score_zero():
    dataset = _one_image([[10, 10, 50, 50]], [2])
    report = evaluate_detections(dataset, [])
    assert report.AP == 0.0 and report.AR100 == 0.0 and report.detections == 0


def test_a_detection_on_a_crowd_region_is_neither_a_hit_nor_a_false_positive():
    dataset = _one_image([[10, 10, 50, 50], [0, 0, 100, 40]], [1, 1], crowd=[False, True])
    on_crowd = Detections(1, [[10, 10, 50, 50], [5, 2, 30, 30]], [0.5, 0.9], [1, 1])
    report = evaluate_detections(dataset, [on_crowd])
    assert report.AP50 == pytest.approx(1.0)  # the higher-scored box on the crowd region costs nothing
    assert report.per_class[0].ground_truth == 1  # crowd regions are not objects to find


def test_the_json_document_has_the_contract_keys():
    dataset, detections = random_set(6)
    document = evaluate_detections(dataset, detections).to_dict()
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100", "per_class"} <= set(document)
    assert all({"name", "AP", "AP50"} <= set(row) for row in document["per_class"])
    import json

    json.dumps(document)  # plain numbers only


def test_detections_on_an_unknown_image_or_class_are_refused():
    dataset = _one_image([[10, 10, 50, 50]], [1])
    with pytest.raises(UsageError, match=r"image 99, which is not in the dataset"):
        evaluate_detections(dataset, [Detections(99, [[0, 0, 5, 5]], [0.5], [1])])
    with pytest.raises(UsageError, match=r"category id 5, which the class map does not have \(it has 1, 2\)"):
        evaluate_detections(dataset, [Detections(1, [[0, 0, 5, 5]], [0.5], [5])])


def test_mismatched_detection_arrays_are_refused():
    with pytest.raises(ValueError, match="2 boxes, 1 scores and 2 category ids"):
        Detections(1, [[0, 0, 1, 1], [0, 0, 2, 2]], [0.5], [1, 1])
