"""``metaleep episodes``: sample, show and list episode suites (one library call per command)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from metaleep._cli import command, fail, flag_names, in_flags
from metaleep._text import printable
from metaleep.data import spec as data_spec
from metaleep.data.folder import chosen_options, options_text
from metaleep.data.spec import DATA_HELP, load_data, parse_data
from metaleep.episodes import suites
from metaleep.episodes.manifest import Suite, write_manifest

app = typer.Typer(
    help="Episode suites: sample them to manifest files, show them, list the standard ones.",
    no_args_is_help=True,
    add_completion=False,
)


def _write(suite: Suite, out: Path) -> None:
    path = write_manifest(suite, out)
    size = path.stat().st_size
    typer.echo(f"wrote {path}: {len(suite)} episodes, {size} bytes ({suite.fingerprint})")


@app.command()
@command("episodes sample")
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
    queries: int = typer.Option(
        0,
        "--queries",
        help="Query images per class (0: as many as every class allows beside the shots, at "
        "most 15).",
    ),
    min_images: int = typer.Option(
        0, "--min-images", help="Leave out classes with fewer images than this (0: keep all)."
    ),
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
    image_size: str = typer.Option(
        "",
        "--image-size",
        help="Resize images while loading: N (N x N) or HxW (default: the files' size; "
        "imagefolder trees of mixed sizes: the median height x width).",
    ),
    channels: int = typer.Option(
        0, "--channels", help="imagefolder: 1 or 3 channels (0: the majority of the files)."
    ),
    bad_files: str = typer.Option(
        "skip",
        "--bad-files",
        help="imagefolder: skip or refuse files that are not usable images (listed either way).",
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
        images = load_data(
            parsed,
            mode=mode,
            image_size=image_size or None,
            channels=channels or None,
            bad_files=bad_files,
        )
        options = {"mode": mode} if parsed.root and parsed.name != "imagefolder" else {}
        if image_size and parsed.name != "imagefolder":
            options["image_size"] = image_size
        options.update(chosen_options(images.loading))
        recipe = suites.sampled_recipe(
            images,
            name=name or out.stem,
            ways=ways,
            shots=shots,
            queries=queries or None,
            alphabets=alphabets,
            episodes=episodes,
            seed=seed,
            split=split,
            part=part,
            min_images=min_images or None,
            data=parsed.text,
            dataset_options=options_text(options),
        )
        _write(suites.build_suite(recipe, images), out)
    except (ValueError, TypeError, FileNotFoundError) as e:
        # EpisodeSpec and the sampler name their arguments: said here as the options
        # (--dataset and --root are the hidden old form of --data NAME:ROOT)
        message = in_flags(str(e), {**flag_names(sample), "dataset": "--data", "root": "--data"})
        raise fail("episodes sample", message) from e


@app.command()
@command("episodes show")
def show(
    suite: str = typer.Argument(..., help="A manifest file or a standard suite name."),
    head: int = typer.Option(5, "--head", help="Episodes to print."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a suite: data set, split, specs, class and alphabet usage, first episodes."""
    try:
        loaded = suites.load_suite(suite)
    except (ValueError, FileNotFoundError) as e:
        raise fail("episodes show", str(e).replace("`name_or_path`", "SUITE")) from e
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
@command("episodes list")
def list_suites() -> None:
    """List the standard suites and where their files are."""
    for key, recipe in suites.STANDARD_SUITES.items():
        path = suites.standard_suite_path(key)
        where = str(path) if path is not None else "regenerated on load"
        typer.echo(f"{key:14s} {recipe.episodes:5d} episodes  {recipe.description}  [{where}]")
