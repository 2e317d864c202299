"""Real data: fine-tune on the deepforest aerial images (two NEON Yellowstone crops, 853 annotated
trees), tiled into 400 px COCO tiles by `headfit data tile`, for a few epochs on the CPU. The loss
must fall and val AP50 must beat the untrained model's on the same tiles."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

import pytest
import torch

from headfit.datasets import read
from headfit.datasets.tile import tile
from headfit.train.prepare import TrainOptions, prepare

CROPS = ("2019_YELL_2_528000_4978000_image_crop2.xml", "2019_YELL_2_541000_4977000_image_crop.xml")


def deepforest_data() -> Path:
    return Path(importlib.metadata.distribution("deepforest").locate_file("deepforest/data"))


@pytest.mark.slow
def test_fine_tuning_on_aerial_tree_tiles_learns(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs on shared cores: one thread is the fastest
    try:
        crops = [read(deepforest_data() / name) for name in CROPS]
        both = dataclasses.replace(crops[0], images=[r for c in crops for r in c.images])
        tiles = tile(both, tmp_path / "tiles", size=400)
        assert tiles.tiles_train >= 30 and tiles.boxes_kept > 800
        options = TrainOptions(
            model="headfit.train.tiny:tiny_fcos",
            data=tmp_path / "tiles",
            epochs=6,
            imgsz=320,
            lr=0.02,
            workers=1,
            device="cpu",
            project=tmp_path / "runs",
        )
        untrained = prepare(options).trainer
        before = untrained.task.validate(untrained.model.eval())
        trainer = prepare(options).trainer
        trainer.fit()
    finally:
        torch.set_num_threads(threads)
    rows = trainer.log.rows
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert max(r["val_AP50"] for r in rows) > before["val_AP50"] + 0.005
    assert (trainer.run / "plots" / "mAP.png").is_file()
