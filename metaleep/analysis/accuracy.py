"""The accuracy of each adaptation, and whether it converged.

A correlation with post-adaptation accuracy is only as good as the adaptation: an adaptation
stopped far from its optimum, or a meta-learned head that starts flat, changes what the
accuracy measures. :func:`accuracy_table` summarises each (backbone, adaptation);
:func:`accuracy_notes` says in words what in it needs a reader's attention.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from metaleep.analysis.tables import check_table

__all__ = ["UNCONVERGED_FRACTION", "accuracy_notes", "accuracy_table", "settings_text"]

UNCONVERGED_FRACTION = 0.5
"""An adaptation counts as unconverged on an episode when its support loss is above this
fraction of ``log N`` (the loss of a uniform guess): it removed less than half of it."""


def settings_text(settings: object) -> str:
    """``steps=1, lr=0.4, second order (as meta-trained)`` from one adaptation's settings.

    Examples
    --------
    >>> settings_text({"steps": 100, "lr": "auto", "accelerated": True, "weight_decay": 0.0})
    'steps=100, lr=auto, accelerated'
    """
    if not isinstance(settings, Mapping):
        return ""
    words = []
    order = ("steps", "lr", "first_order", "accelerated", "weight_decay")
    keys = sorted(settings, key=lambda k: (order.index(k) if k in order else len(order), k))
    for key in keys:
        value = settings[key]
        if key == "from_training" or (key == "batch_norm" and value == "transductive"):
            continue
        if key == "first_order":
            words.append("first order" if value else "second order")
        elif key == "accelerated":
            words.append("accelerated" if value else "plain GD")
        elif key == "weight_decay" and not value:
            continue
        else:
            words.append(f"{key}={value}")
    text = ", ".join(words)
    if settings.get("from_training"):
        text += " (as meta-trained)"
    return text


def accuracy_table(
    table: pd.DataFrame,
    *,
    target: str = "accuracy",
    settings: Mapping[str, Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """Accuracy per backbone and adaptation, with how far each adaptation converged.

    The dummy-label mode does not change an adaptation, so each (episode, backbone,
    adaptation) counts once.

    Parameters
    ----------
    table:
        The study table: ``episode``, ``backbone``, ``adaptation`` and ``target`` columns;
        ``support_loss``, ``start_logit_std`` and ``ways`` are used when present.
    target:
        Accuracy column.
    settings:
        ``study.json``'s ``adaptation_settings`` (``{backbone: {adaptation: {...}}}``), shown
        as a column.

    Returns
    -------
    DataFrame
        One row per (backbone, adaptation): ``episodes``, ``mean``, ``std`` (over episodes),
        ``share_100`` (share of episodes at accuracy 1), ``support_loss`` (mean),
        ``unconverged`` (share of episodes whose support loss is above
        :data:`UNCONVERGED_FRACTION` x log N; NaN for adaptations that do not iterate from a
        starting head, such as prototypes, whose ``start_logit_std`` is NaN),
        ``start_logit_std`` (mean spread of the logits the adaptation started from) and
        ``settings``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = pd.DataFrame({"episode": [0, 1, 0, 1], "backbone": "m", "dummy": "head",
    ...                   "adaptation": ["anil", "anil", "maml", "maml"], "ways": 5,
    ...                   "accuracy": [1.0, 0.8, 0.6, 0.6], "support_loss": [0.1, 0.3, 1.5, 1.2],
    ...                   "start_logit_std": 0.5})
    >>> accuracy_table(t)[["adaptation", "mean", "share_100", "unconverged"]].values.tolist()
    [['anil', 0.9, 0.5, 0.0], ['maml', 0.6, 0.0, 1.0]]
    """
    check_table(table)
    needed = ["episode", "backbone", "adaptation", target]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"`table` must have the columns {needed!r}; got {missing!r} missing.")
    keys = [c for c in ("suite", "episode", "backbone", "adaptation") if c in table.columns]
    once = table.drop_duplicates(keys)
    rows = []
    for (backbone, adaptation), frame in once.groupby(["backbone", "adaptation"], sort=True):
        accuracy = frame[target].to_numpy(dtype=np.float64)
        row: dict[str, object] = {
            "backbone": backbone,
            "adaptation": adaptation,
            "episodes": len(frame),
            "mean": float(accuracy.mean()),
            "std": float(accuracy.std(ddof=1)) if len(accuracy) > 1 else math.nan,
            "share_100": float(np.mean(accuracy >= 1.0)),
            "support_loss": math.nan,
            "unconverged": math.nan,
            "start_logit_std": math.nan,
        }
        if "support_loss" in frame.columns and frame["support_loss"].notna().any():
            loss = frame["support_loss"].to_numpy(dtype=np.float64)
            ways = frame["ways"].to_numpy(dtype=np.float64) if "ways" in frame else None
            row["support_loss"] = float(np.nanmean(loss))
            iterative = "start_logit_std" in frame and frame["start_logit_std"].notna().any()
            if ways is not None and iterative:
                row["unconverged"] = float(np.mean(loss > UNCONVERGED_FRACTION * np.log(ways)))
        if "start_logit_std" in frame.columns and frame["start_logit_std"].notna().any():
            row["start_logit_std"] = float(np.nanmean(frame["start_logit_std"]))
        entry = (settings or {}).get(str(backbone), {})
        row["settings"] = settings_text(entry.get(str(adaptation)) if entry else None)
        rows.append(row)
    return pd.DataFrame(rows)


def _flat_spread(ways: int, probability: float = 0.9) -> float:
    """Logit spread of an N-way head that gives one class ``probability`` and the others equal
    logits: the logit gap a = log(p (N - 1) / (1 - p)), spread a sqrt(N - 1) / N."""
    gap = math.log(probability * (ways - 1) / (1 - probability))
    return gap * math.sqrt(ways - 1) / ways


def accuracy_notes(summary: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Sentences about the adaptations of ``summary`` (:func:`accuracy_table` of ``table``)
    that did not converge, and the meta-learned heads that start nearly flat."""
    notes = []
    stuck = summary[summary["unconverged"] > 0.1]
    for rec in stuck.to_dict("records"):
        notes.append(
            f"{rec['backbone']} / {rec['adaptation']} did not converge on "
            f"{100 * float(rec['unconverged']):.0f} % of the episodes (mean support loss "
            f"{float(rec['support_loss']):.2f}): its accuracy, and every correlation with it, "
            "describes an adaptation stopped early."
        )
    ways = int(table["ways"].max()) if "ways" in table.columns else 0
    heads = summary[summary["adaptation"].isin(["anil", "maml"])]
    for backbone, frame in heads.groupby("backbone", sort=True):
        spread = float(frame.sort_values("adaptation")["start_logit_std"].iloc[0])
        if not math.isfinite(spread) or ways < 2:
            continue
        reference = _flat_spread(ways)
        flat = " — nearly flat" if spread < reference / 2 else ""
        notes.append(
            f"{backbone}'s meta-learned head starts from logits of spread {spread:.2f} on the "
            f"support images{flat} (a {ways}-way head that gives the true class 0.9 has "
            f"{reference:.2f}); its 'head' dummy labels are then close to uniform, which "
            "bears on their LEEP."
        )
    return notes
