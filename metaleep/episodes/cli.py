"""``metaleep episodes``: sample, show and list episode suites (one library call per command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from metaleep._text import printable
from metaleep.data import spec as data_spec
from metaleep.data.spec import DATA_HELP, load_data, parse_data
from metaleep.episodes import suites
from metaleep.episodes.manifest import Suite, write_manifest
from metaleep.episodes.spec import EpisodeSpec

app = typer.Typer(
    help="Episode suites: sample them to manifest files, show them, list the standard ones.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"Error: {error}", err=True)
    return typer.Exit(1)


def _write(suite: Suite, out: Path) -> None:
    path = write_manifest(suite, out)
    size = path.stat().st_size
    typer.echo(f"wrote {path}: {len(suite)} episodes, {size} bytes ({suite.fingerprint})")


@app.command()
def sample(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Manifest file to write (default for --suite: episodes/NAME.csv)."
        ),
    ] = None,
    suite: str | None = typer.Option(
        None,
        "--suite",
        help="Regenerate a standard suite (see `metaleep episodes list`), or `all` of them.",
    ),
    ways: int = typer.Option(5, "--ways", help="N: classes per episode."),
    shots: int = typer.Option(1, "--shots", help="K: support images per class."),
    queries: int = typer.Option(15, "--queries", help="Query images per class."),
    alphabets: str = typer.Option(
        "any", "--alphabets", help="any | same (one alphabet per episode) | mixed (>= 2)."
    ),
    episodes: int = typer.Option(600, "--episodes", help="Number of episodes."),
    seed: int = typer.Option(0, "--seed", help="Seed: episode i depends on (seed, i) only."),
    split: str = typer.Option(
        "omniglot", "--split", help="Class split name, or `all` for every class."
    ),
    part: str = typer.Option("test", "--part", help="train | validation | test."),
    data: str = typer.Option("glyphs", "--data", help=f"The data: {DATA_HELP}"),
    dataset: str | None = typer.Option(
        None, "--dataset", hidden=True, help="Old form of --data NAME (with --root)."
    ),
    root: Annotated[
        Path | None, typer.Option("--root", hidden=True, help="Old form of --data NAME:ROOT.")
    ] = None,
    mode: str = typer.Option("test", "--mode", help="Benchmark split file to read."),
    image_size: int = typer.Option(
        0, "--image-size", help="Resize images to this square size while loading (0: keep)."
    ),
    name: str | None = typer.Option(None, "--name", help="Suite name (default: file stem)."),
) -> None:
    """Sample a suite of episodes and write its manifest."""
    from metaleep._io import check_output_file

    try:
        if out is not None and suite != "all":
            check_output_file(out, "--out")  # before any sampling
        if suite is not None:
            names = list(suites.STANDARD_SUITES) if suite == "all" else [suite]
            if suite != "all" and suite not in suites.STANDARD_SUITES:
                raise ValueError(
                    f"`--suite` must be all or one of {', '.join(suites.STANDARD_SUITES)}; "
                    f"got {suite!r}."
                )
            folder = out if (suite == "all" and out is not None) else Path("episodes")
            loaded: dict[str, Any] = {}
            for key in names:
                recipe = suites.STANDARD_SUITES[key]
                if recipe.dataset not in loaded:
                    loaded[recipe.dataset] = data_spec.load_dataset(recipe.dataset)
                target = folder / f"{key}.csv" if (suite == "all" or out is None) else out
                _write(suites.build_suite(recipe, loaded[recipe.dataset]), target)
            return
        if out is None:
            raise ValueError("`--out` must name the manifest file to write; got nothing.")
        if split == suites.ALL_CLASSES:
            part = suites.ALL_CLASSES
        if dataset is not None:  # the old --dataset NAME --root DIR form
            data = f"{dataset}:{root}" if root is not None else dataset
        parsed = parse_data(data)
        if parsed.name != "glyphs" and split == "omniglot":
            # Only the glyphs have the omniglot alphabet split: other data sample all classes.
            split = part = suites.ALL_CLASSES
        options = " ".join(
            word
            for word in (
                f"--mode {mode}" if parsed.root and parsed.name != "imagefolder" else "",
                f"--image-size {image_size}" if image_size else "",
            )
            if word
        )
        spec = EpisodeSpec(ways=ways, shots=shots, queries=queries, alphabets=alphabets)  # type: ignore[arg-type]
        recipe = suites.SuiteRecipe(
            name=name or out.stem,
            episodes=episodes,
            spec=spec,
            seed=seed,
            split=split,
            part=part,
            dataset=parsed.text,
            dataset_options=options,
            description=f"{spec.name} episodes from {split}/{part} of {parsed.name}",
        )
        images = load_data(parsed, mode=mode, image_size=image_size or None)
        _write(suites.build_suite(recipe, images), out)
    except (ValueError, TypeError, OSError) as e:
        raise _fail(e) from e


@app.command()
def show(
    suite: str = typer.Argument(..., help="A manifest file or a standard suite name."),
    head: int = typer.Option(5, "--head", help="Episodes to print."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a suite: data set, split, specs, class and alphabet usage, first episodes."""
    try:
        loaded = suites.load_suite(suite)
    except (ValueError, FileNotFoundError) as e:
        raise _fail(e) from e
    summary = loaded.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    for key, value in summary.items():
        if key == "alphabets" and len(value) > 8:
            top = sorted(value.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
            value = f"{len(value)} alphabets; most used: " + ", ".join(f"{a} {n}" for a, n in top)
        typer.echo(f"{key + ':':24s}{printable(value, 2000)}")  # a manifest is anyone's file
    if head > 0:
        typer.echo("")
        rows = zip(loaded.episodes, loaded.specs, loaded.alphabets, strict=True)
        for _, (ep, spec, alph) in zip(range(head), rows, strict=False):
            typer.echo(
                f"episode {ep.index} {spec.name}: classes {ep.classes.tolist()} "
                f"alphabets {'|'.join(alph) or '-'}; support {_short(ep.support)}; "
                f"query {_short(ep.query)}"
            )


def _short(values: np.ndarray, n: int = 6) -> str:
    items = values.tolist()
    text = " ".join(str(v) for v in items[:n])
    return f"{text} ... ({len(items)})" if len(items) > n else text


@app.command("list")
def list_suites() -> None:
    """List the standard suites and where their files are."""
    for key, recipe in suites.STANDARD_SUITES.items():
        path = suites.standard_suite_path(key)
        where = str(path) if path is not None else "regenerated on load"
        typer.echo(f"{key:14s} {recipe.episodes:5d} episodes  {recipe.description}  [{where}]")
