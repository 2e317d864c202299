"""``headfit data check | synth | tile``: lint a detection dataset, write a synthetic one, tile large images.

Nothing here imports torch: ``data check`` on 100,000 boxes starts and answers in about a second.
"""

from __future__ import annotations

from pathlib import Path

import click

from headfit.cli.app import console, json_flag, print_json

EXIT_CLEAN, EXIT_PROBLEMS = 0, 1


@click.group("data")
def command() -> None:
    """Check, synthesise and tile detection datasets (COCO, YOLO, Pascal VOC, CSV)."""


@command.command("check")
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="The folder the image file names are relative to.",
)
@click.option(
    "--split",
    metavar="S",
    help="The split to read: a YOLO key, a VOC ImageSets/Main file, or a JSON in DATA.",
)
@click.option(
    "--fix",
    "fix_out",
    type=click.Path(path_type=Path),
    metavar="OUT",
    help="Write a cleaned COCO JSON to OUT (DATA is never changed); the exit code still describes DATA.",
)
@json_flag("Print one data check document.")
def check(data: Path, images: Path | None, split: str | None, fix_out: Path | None, as_json: bool) -> None:
    """Lint DATA: every problem by the dataset's own ids, notes, stats. Exit 0 clean, 1 problems, 2 unreadable."""
    from headfit.datasets import read
    from headfit.datasets.lint import lint

    dataset = read(data, images=images, split=split)
    report = lint(dataset)
    if fix_out is not None:
        from headfit.datasets.fix import fix

        report.fix = fix(dataset, fix_out)
    if as_json:
        print_json(report.to_dict())
    else:
        from headfit.datasets.render import report_renderables

        out = console()
        for part in report_renderables(report):
            out.print(part)
    raise SystemExit(EXIT_CLEAN if report.ok else EXIT_PROBLEMS)


@command.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--images",
    "count",
    type=click.IntRange(min=2),
    default=64,
    show_default=True,
    help="Images to draw (a fifth go to val).",
)
@click.option(
    "--classes",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Shape kinds, one colour each.",
)
@click.option(
    "--size", type=click.IntRange(min=32), default=160, show_default=True, help="Image side in pixels."
)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed writes the same files.")
@json_flag("Print the paths written as one JSON document.")
def synth_command(out: Path, count: int, classes: int, size: int, seed: int, as_json: bool) -> None:
    """Write a synthetic detection set with exact boxes: OUT/train.json, OUT/val.json, OUT/images/."""
    from headfit.datasets import synth

    train, val = synth(out, images=count, classes=classes, size=size, seed=seed)
    if as_json:
        print_json({"train": str(train), "val": str(val), "images": str(out / "images")})
        return
    console().print(
        f"wrote `{train}`, `{val}` and {count} images in `{out / 'images'}` ({classes} classes, {size}x{size})",
        highlight=False,
    )


@command.command("tile")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--size", type=click.IntRange(min=32), default=400, show_default=True, help="Tile side in pixels."
)
@click.option(
    "--images",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="The folder SRC's image names are relative to.",
)
@click.option("--split", metavar="S", help="The split of SRC to tile.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of tiles kept for validation.",
)
@click.option(
    "--min-visible",
    type=click.FloatRange(0, 1, max_open=False),
    default=0.5,
    show_default=True,
    help="Drop a cut box that keeps less than this share of its area.",
)
@json_flag("Print the tiling summary as one JSON document.")
def tile_command(
    src: Path,
    out: Path,
    size: int,
    images: Path | None,
    split: str | None,
    val_fraction: float,
    min_visible: float,
    as_json: bool,
) -> None:
    """Cut SRC's images into SIZE x SIZE tiles: OUT/train.json, OUT/val.json (COCO), OUT/images/."""
    from headfit.datasets import read
    from headfit.datasets.tile import tile

    result = tile(
        read(src, images=images, split=split),
        out,
        size=size,
        val_fraction=val_fraction,
        min_visible=min_visible,
    )
    if as_json:
        print_json(result.to_dict())
        return
    console().print(result.summary(), highlight=False)
