"""Every configuration error of a study, found while it is set up, before any work.

:func:`check_study` runs after the data, the suite and the backbones are loaded and before any
backbone output is computed or anything is written. It refuses, with the option's name, what
was expected and what was got (the names of adaptations, metrics and dummy-label modes are
checked once, by :class:`~metaleep.study.config.StudyConfig` itself):

- a backbone that would give no row at all: none of the requested adaptations applies to it on
  the suite's episodes (a backbone without a requested dummy-label mode still gets rows of dummy
  ``none``: every feature metric);
- a backbone that cannot take the data's images (a probe forward pass on two images, through
  the declared input transform), or whose head is not a linear layer over its embedding;
- test classes that a backbone was trained on (its source data and a suite that uses some of its
  source classes): the one case where the data set a backbone was trained on matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from metaleep.backbones.protocol import StudyBackbone
    from metaleep.data.base import ImageDataset
    from metaleep.episodes.spec import Episode
    from metaleep.study.config import StudyConfig


def probe(backbone: StudyBackbone, dataset: ImageDataset) -> int:
    """Run ``backbone`` on two images of ``dataset`` (through its input transform) and return
    the embedding width d; a clear ValueError when it cannot take them."""
    import torch

    data = backbone.view(dataset)
    indices = np.arange(min(2, len(dataset)))
    model = backbone.model
    was_training = model.training
    where = (
        f"backbone {backbone.name!r} on images of shape {data.image_shape} from "
        f"{dataset.fingerprint!r}"
    )
    hint = (
        "declare the input it takes (from_module(..., input_shape=(C, H, W)), or "
        "NAME=SPEC with a wrapped backbone) so that metaleep resizes the images"
    )
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None else torch.float32
        model.eval()
        with torch.no_grad():
            embed = model.features
            features = embed(data.batch(indices).to(device, dtype))  # type: ignore[operator]
            if not isinstance(features, torch.Tensor) or features.ndim != 2:
                shape = getattr(features, "shape", type(features).__name__)
                raise ValueError(
                    f"`features` must return (n, d) embeddings for {where}; got {shape}."
                )
            head = backbone.head
            if head is not None and head.in_features != features.shape[1]:
                raise ValueError(
                    f"`head` must take the embedding's {features.shape[1]} features for "
                    f"{where}; got nn.Linear({head.in_features}, {head.out_features})."
                )
    except ValueError:
        raise
    except Exception as error:  # the user's model failed: say where and what to do
        raise ValueError(
            f"{where}: the model failed ({type(error).__name__}: {error}); {hint}."
        ) from error
    finally:
        model.train(was_training)
    return int(features.shape[1])


def check_study(
    config: StudyConfig,
    dataset: ImageDataset,
    episodes: Sequence[Episode],
    backbones: Sequence[StudyBackbone],
    *,
    adapt: bool = True,
) -> None:
    """Refuse a study that would fail or give no rows (see the module docstring).

    Parameters
    ----------
    config:
        The study's configuration (its names already checked by the class).
    dataset, episodes, backbones:
        What it will run on, loaded.
    adapt:
        False checks a scores-only run (:func:`metaleep.score`): no adaptation needed.

    Raises
    ------
    ValueError
        Naming the option, what was expected and what was got.
    """
    if not episodes:
        raise ValueError("`episodes` must hold at least one episode; got an empty suite.")
    ways = sorted({ep.ways for ep in episodes})
    suite_classes = np.unique(np.concatenate([ep.classes for ep in episodes]))
    for backbone in backbones:
        probe(backbone, dataset)
        methods = {a for w in ways for a in config.adaptations if backbone.offers_adaptation(a, w)}
        if adapt and not methods:
            raise ValueError(
                f"`adaptations` must include one that backbone {backbone.name!r} "
                f"({backbone.algorithm}, head {_head(backbone)}) supports on {_ways(ways)} "
                f"episodes (retrain_head, finetune, prototype apply to every backbone); got "
                f"{', '.join(config.adaptations)}."
            )
        if (
            backbone.source_data is not None
            and backbone.source_id == dataset.fingerprint
            and backbone.source_classes.size
        ):
            seen = np.intersect1d(suite_classes, backbone.source_classes)
            if seen.size:
                names = dataset.classes["name"].astype(str).to_numpy()[seen[:5]].tolist()
                raise ValueError(
                    f"`suite` must use classes that backbone {backbone.name!r} was not trained "
                    f"on; got {seen.size} of its source classes (e.g. {names}) in "
                    f"episodes on {dataset.fingerprint!r}. Sample the suite from the held-out "
                    f"classes (`metaleep episodes sample --part test`) or from another data "
                    f"set (cross-domain)."
                )


def _head(backbone: StudyBackbone) -> str:
    head = backbone.head
    return "none" if head is None else f"{head.out_features}-way"


def _ways(ways: list[int]) -> str:
    return "/".join(str(w) for w in ways) + "-way"
