"""``metaleep train``: (meta-)train a backbone, or build the default ones.

Registered in :mod:`metaleep.cli` as one command (``app.command(name="train")(train)``).
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from metaleep._cli import fail, flag_names, in_flags
from metaleep.backbones.config import ALGORITHMS, ARCH_NAMES, TrainConfig

__all__ = ["export", "load_data", "train"]

_DEFAULTS = TrainConfig()


def _field_help() -> dict[str, str]:
    """Each TrainConfig field's description, read from its docstring (so --help cannot drift)."""
    doc = TrainConfig.__doc__ or ""
    body = doc.split("Parameters\n    ----------\n", 1)[-1].split("\n    Examples", 1)[0]
    found: dict[str, str] = {}
    for names, text in re.findall(r"^    (\w[\w, ]*):\n((?:        .*\n?)+)", body, flags=re.M):
        words = " ".join(line.strip() for line in text.splitlines())
        words = re.sub(r":\w+:`~?([^`]+)`", r"\1", words).replace("``", "")
        for name in names.split(","):
            found[name.strip()] = words
    return found


_HELP = _field_help()
if set(_HELP) != {f.name for f in fields(TrainConfig)}:  # pragma: no cover - a docstring slip
    raise RuntimeError("TrainConfig's docstring must describe every field")


def load_data(data: str, split: str, *, mode: str = "train") -> tuple[Any, Any]:
    """The data set and class split named on the command line.

    ``data`` is a ``--data`` spec (:mod:`metaleep.data.spec`). Data with alphabets (glyphs,
    omniglot) split by alphabet (``split``, default ``omniglot``); other data, or
    ``--split all``, train on every class (no validation classes: no early stopping).
    """
    from metaleep.data.spec import load_data as load_spec
    from metaleep.data.splits import ClassSplit, get_split

    try:
        dataset = load_spec(data, mode=mode)
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise typer.BadParameter(str(error), param_hint="--data") from error
    if split == "all" or "alphabet" not in dataset.classes.columns:
        if split not in ("all", "omniglot"):
            raise typer.BadParameter(
                f"`--split` must be all for data without alphabets ({dataset.dataset_id}); "
                f"got {split!r}.",
                param_hint="--split",
            )
        empty = np.zeros(0, dtype=np.int64)
        every = np.arange(dataset.num_classes, dtype=np.int64)
        return dataset, ClassSplit("all", every, empty, empty, (), (), (), empty, empty)
    return dataset, get_split(dataset, name=split)


def _opt(name: str, **kwargs: Any) -> Any:
    return typer.Option(getattr(_DEFAULTS, name), help=_HELP[name], **kwargs)


def train(
    algorithm: str = _opt("algorithm", metavar="|".join(ALGORITHMS)),
    arch: str = _opt("arch", metavar="|".join(ARCH_NAMES) + "|conv<L>-<H>"),
    ways: int = _opt("ways"),
    shots: int = _opt("shots"),
    queries: int = _opt("queries"),
    inner_lr: float = _opt("inner_lr"),
    inner_steps: int = _opt("inner_steps"),
    meta_lr: float = _opt("meta_lr"),
    meta_batch: int = _opt("meta_batch"),
    batch_size: int = _opt("batch_size"),
    iterations: int = _opt("iterations"),
    seed: int = _opt("seed"),
    device: str = _opt("device"),
    eval_every: int = _opt("eval_every"),
    eval_episodes: int = _opt("eval_episodes"),
    patience: int | None = _opt("patience"),
    threads: int | None = _opt("threads"),
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Directory for training.pt (resume state) and backbone.pt."),
    ] = None,
    resume: bool = typer.Option(
        False, "--resume/--no-resume", help="Continue from --out/training.pt if it exists."
    ),
    data: str = typer.Option(
        "glyphs",
        help="Data to train on, NAME[:ROOT]: glyphs, digits, "
        "imagefolder:DIR, omniglot:ROOT, mini-imagenet:ROOT, ...",
    ),
    mode: str = typer.Option("train", help="With a benchmark --data: the split file to read."),
    split: str = typer.Option("omniglot", help="Class split of the data set."),
    test_episodes: int = typer.Option(
        0, help="After training, meta-test on this many episodes of the test classes."
    ),
    test_shots: str = typer.Option("1,5", help="Shots of the meta-test episodes, e.g. 1,5."),
    test_queries: int = typer.Option(15, help="Query images per class of the meta-test episodes."),
    default: bool = typer.Option(
        False,
        "--default",
        help="Train the default backbones (at --seed) into the cache instead of loading the "
        "shipped ones; with --out, also write them there in the shipped layout. Ignores the "
        "other training options.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    save_every: int = typer.Option(
        0,
        help="Every K steps, also save the weights to OUT/snapshots/step-NNNNNN.pt (backbone "
        "checkpoints named NAME@step-K), to rank them with metaleep score.",
    ),
    name: str = typer.Option("", help="The backbone's name (default: the algorithm)."),
) -> None:
    """(Meta-)train a backbone on the training classes of a split; print where it is saved."""
    from metaleep.backbones.evaluation import evaluate

    try:
        shots_list = [int(s) for s in test_shots.split(",") if s.strip()]
    except ValueError:
        message = f"`--test-shots` must be integers like 1,5; got {test_shots!r}."
        raise typer.BadParameter(message) from None
    if default:
        _train_defaults(seed, out, progress, test_episodes, shots_list, test_queries)
        return
    if out is None:
        raise typer.BadParameter("`--out` must be a directory for the checkpoint; got None.")
    try:
        config = TrainConfig(
            algorithm=algorithm,  # type: ignore[arg-type]
            arch=arch,
            ways=ways,
            shots=shots,
            queries=queries,
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            meta_lr=meta_lr,
            meta_batch=meta_batch,
            batch_size=batch_size,
            iterations=iterations,
            seed=seed,
            device=device,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            patience=patience,
            threads=threads,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    from metaleep.backbones.training import train as run_training

    dataset, class_split = load_data(data, split, mode=mode)
    if save_every < 0:
        raise typer.BadParameter(f"`--save-every` must be >= 0; got {save_every}.")
    try:
        backbone = run_training(
            config,
            dataset,
            class_split,
            checkpoint_dir=out,
            resume=resume,
            progress=progress,
            name=name or None,
            snapshot_every=save_every or None,
        )
    except ImportError as error:  # an architecture of an extra that is not installed
        raise fail("train", str(error)) from error
    if save_every:
        typer.echo(
            f"{backbone.name}: snapshots every {save_every} steps in {out / 'snapshots'}; rank "
            f"them with `metaleep score --backbones {out / 'snapshots'}`"
        )
    _report(backbone)
    _meta_test(backbone, dataset, class_split, test_episodes, shots_list, test_queries, evaluate)


def _train_defaults(
    seed: int,
    out: Path | None,
    progress: bool,
    test_episodes: int,
    shots: list[int],
    queries: int,
) -> None:
    """``metaleep train --default``: rebuild the default backbones of one training seed."""
    from metaleep.backbones.default import default_backbones, ship
    from metaleep.backbones.evaluation import evaluate

    dataset, class_split = load_data("glyphs", "omniglot")
    try:
        built = default_backbones(
            seed=seed, progress=progress, dataset=dataset, split=class_split, shipped=False
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--seed") from error
    for backbone in built.values():
        _report(backbone)
        if out is not None:
            typer.echo(f"{backbone.name}: shipped layout {ship(backbone, out, seed=seed)}")
        _meta_test(backbone, dataset, class_split, test_episodes, shots, queries, evaluate)
    typer.echo(
        "metaleep run and metaleep grid use the backbones shipped with metaleep, not these; "
        "pass one with --backbones NAME=PATH (a rebuilt backbone differs from the shipped one "
        "on another machine)."
    )


def _report(backbone: Any) -> None:
    for record in backbone.history:
        typer.echo(
            f"{backbone.name}: step {record['step']:>6}  train loss {record['train_loss']:.4f}  "
            f"val acc {record['val_acc']:.4f} ± {record['val_ci']:.4f}  "
            f"{record['seconds']:.1f} s"
        )
    typer.echo(
        f"{backbone.name}: kept step {backbone.best_step} of {backbone.step}; "
        f"checkpoint {backbone.path}"
    )


def _meta_test(
    backbone: Any,
    dataset: Any,
    split: Any,
    episodes: int,
    shots: list[int],
    queries: int,
    evaluate: Any,
) -> None:
    from metaleep.episodes import EpisodeSpec

    if episodes <= 0:
        return
    for k in shots:
        spec = EpisodeSpec(ways=backbone.config.ways, shots=k, queries=queries)
        mean, half = evaluate(backbone, dataset, split, spec, episodes=episodes, seed=0)
        typer.echo(
            f"{backbone.name}: meta-test {spec.name} over {episodes} episodes: "
            f"{100 * mean:.2f} % ± {100 * half:.2f}"
        )


def export(
    spec: str = typer.Argument(
        ...,
        help="The model: FILE.py:CALLABLE or package.module:CALLABLE (returning an nn.Module or "
        "a wrapped backbone), optionally @WEIGHTS.pt (a state dict).",
    ),
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write.")] = Path(
        "model.pt"
    ),
    name: str = typer.Option("", help="Backbone name (default: the callable's name)."),
    algorithm: str = typer.Option(
        "",
        help="How it was trained: maml, fomaml, anil, protonet, supervised (default: "
        "what from_module finds).",
    ),
    inner_lr: float = typer.Option(0.0, help="Inner-loop learning rate it was trained with."),
    inner_steps: int = typer.Option(-1, help="Inner-loop steps it was trained with."),
) -> None:
    """Write a checkpoint of your model that --backbones accepts (metaleep run / score)."""
    from dataclasses import replace

    from metaleep.backbones.export import save_backbone
    from metaleep.backbones.wrap import from_module, load_factory

    try:
        backbone = load_factory(spec, name=name or spec.rpartition(":")[2].partition("@")[0])
        if algorithm or inner_lr or inner_steps >= 0:
            rewrapped = from_module(
                features=backbone.model.features,
                head=backbone.head,
                name=backbone.name,
                algorithm=algorithm or backbone.algorithm,
                inner_lr=inner_lr or backbone.inner.get("lr"),
                inner_steps=inner_steps if inner_steps >= 0 else backbone.inner.get("steps"),
                first_order=backbone.inner.get("first_order"),
                fingerprint=backbone.fingerprint,
            )
            backbone = replace(rewrapped, input=backbone.input, origin=backbone.origin)
        path = save_backbone(backbone, out, factory=spec.partition("@")[0])
    except (ValueError, TypeError, FileNotFoundError, ImportError) as error:
        # the factory loaders speak of --backbones, where run and score take a spec; here it is
        # the SPEC argument
        message = in_flags(str(error), flag_names(export)).replace("`--backbones`", "SPEC")
        raise fail("export", message) from error
    typer.echo(
        f"wrote {path}: backbone {backbone.name!r} ({backbone.algorithm}, head "
        f"{'none' if backbone.head is None else backbone.head.out_features}); use it with "
        f"--backbones {path}"
    )
