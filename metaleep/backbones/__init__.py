"""Meta-trained backbones: architectures, (meta-)training, checkpoints and the defaults.

Public API (imported lazily: ``import metaleep.backbones`` does not import torch)::

    build_backbone(arch, *, out_features, in_shape=(1, 28, 28), seed=0) -> FewShotNet
    TrainConfig(algorithm="maml", arch="conv4-small", ...)
    train(config, dataset, split, *, checkpoint_dir=None, resume=False, progress=False,
          name=None, callback=None) -> Backbone
    load_backbone(path, *, dataset=None, arch=None, device="cpu") -> Backbone
    evaluate(backbone, dataset, split, spec, *, episodes=600, seed=0, ...) -> (mean, half_width)
    default_backbone(algorithm="maml", *, progress=True, dataset=None, split=None) -> Backbone
    default_backbones(algorithms=("maml", "supervised", "protonet"), ...) -> dict[str, Backbone]
    from_module(module, *, name, features=None, head=None, algorithm=None, ...) -> StudyBackbone
    save_backbone(backbone, path, factory="FILE.py:CALLABLE")   # a checkpoint --backbones takes
    import_learn2learn() -> module   # learn2learn without gym's import-time notice
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ARCHITECTURES": "models",
    "FewShotNet": "models",
    "build_backbone": "models",
    "import_learn2learn": "models",
    "ALGORITHMS": "config",
    "TrainConfig": "config",
    "train": "training",
    "calibrate_batch_norm": "training",
    "Backbone": "checkpoint",
    "CheckpointError": "checkpoint",
    "load_backbone": "checkpoint",
    "evaluate": "evaluation",
    "DEFAULT_CONFIGS": "default",
    "default_backbone": "default",
    "default_backbones": "default",
    "StudyBackbone": "protocol",
    "FewShotModel": "protocol",
    "weights_fingerprint": "protocol",
    "from_module": "wrap",
    "load_factory": "wrap",
    "study_backbone": "wrap",
    "load_wrapped": "export",
    "save_backbone": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"metaleep.backbones.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'metaleep.backbones' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names (lazy ones too) for dir() and tab completion.
    return sorted({*__all__, *(n for n in globals() if n.startswith("_"))})
