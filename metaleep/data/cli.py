"""``metaleep data``: look at the glyphs data set (contact sheet) and its bank (info)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from metaleep._cli import command, fail

app = typer.Typer(
    help="The built-in glyphs data set: contact sheets and bank information.",
    no_args_is_help=True,
    add_completion=False,
)
DEFAULT_SHEET = Path("sheet.png")


@app.command("sheet")
@command("data sheet")
def sheet(
    out: Annotated[Path, typer.Option("--out", help="Output PNG.")] = DEFAULT_SHEET,
    classes: int = typer.Option(10, "--classes", min=1, help="Classes (rows), drawn at random."),
    instances: int = typer.Option(10, "--instances", min=1, help="Instances (columns) per class."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the choice of classes/instances."),
    alphabet: str | None = typer.Option(
        None, "--alphabet", help="Only classes of this alphabet (case-insensitive)."
    ),
    data_seed: int = typer.Option(0, "--data-seed", min=0, help="Seed of the glyph distortions."),
    instances_per_class: int = typer.Option(
        20,
        "--instances-per-class",
        min=1,
        help="Instances generated per class (raised to --instances if smaller).",
    ),
) -> None:
    """Write a contact sheet of glyph classes x instances to a PNG."""
    from metaleep._io import check_output_file
    from metaleep.data.glyphs import load_bank, load_glyphs
    from metaleep.data.sheet import contact_sheet

    try:
        check_output_file(out, "--out")  # before any image is generated
    except ValueError as error:
        raise fail("data sheet", str(error)) from error

    chosen: int | list[int] = classes
    if alphabet is not None:  # resolved on the bank, before any image is generated
        frame = load_bank().classes_frame()
        names = frame["alphabet"].astype(str)
        key = alphabet.strip().lower().replace("_", " ")
        ids = frame.index[names.str.lower().str.replace("_", " ") == key].to_numpy()
        if ids.size == 0:
            valid = ", ".join(sorted(set(names)))
            raise typer.BadParameter(
                f"`alphabet` must be one of {valid}; got {alphabet!r}.", param_hint="--alphabet"
            )
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        chosen = np.sort(rng.choice(ids, size=min(classes, ids.size), replace=False)).tolist()
    dataset = load_glyphs(seed=data_seed, instances_per_class=max(instances_per_class, instances))
    path = contact_sheet(dataset, out, classes=chosen, instances=instances, seed=seed)
    typer.echo(str(path))


@app.command("info")
@command("data info")
def info(
    seed: int = typer.Option(0, "--seed", min=0, help="Seed whose cache to report."),
    instances_per_class: int = typer.Option(
        20, "--instances-per-class", min=1, help="Instances per class whose cache to report."
    ),
    build: bool = typer.Option(False, "--build", help="Build the cache if it is missing."),
) -> None:
    """Classes and alphabets of the glyph bank, and the instance cache."""
    import time

    from metaleep.data.glyphs import (
        BANK_PATH,
        alphabet_table,
        cache_info,
        cache_path,
        glyph_images,
        load_bank,
    )

    bank = load_bank()
    table = alphabet_table(bank)
    typer.echo(f"bank      {BANK_PATH} ({BANK_PATH.stat().st_size / 1e6:.2f} MB)")
    typer.echo(f"version   {bank.version}")
    typer.echo(
        f"classes   {bank.num_classes} in {len(table)} alphabets; faces per class "
        f"{bank.n_faces.min()}/{int(np.median(bank.n_faces))}/{bank.n_faces.max()} "
        f"(min/median/max) from {len(bank.faces)} font faces"
    )
    typer.echo("")
    typer.echo(table.to_string())
    typer.echo("")
    path = cache_path(seed, instances_per_class)
    if build and not path.exists():
        start = time.perf_counter()
        glyph_images(seed=seed, instances_per_class=instances_per_class)
        typer.echo(f"built cache in {time.perf_counter() - start:.1f} s")
    if path.exists():
        meta = cache_info(path)
        typer.echo(
            f"cache     {path} ({path.stat().st_size / 1e6:.1f} MB, {meta['images']} images, "
            f"built in {meta['seconds']:.1f} s)"
        )
    else:
        typer.echo(f"cache     {path} (not built yet; `metaleep data info --build` builds it)")
