"""The adaptations on the default MAML backbone: ANIL converges, MAML is adapted as trained.

Uses ``default_backbone("maml")`` (the shipped backbone: nothing is trained) and the real
glyph data set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metaleep.adapt.registry import backbone_config, get_adaptation, head_parameters

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def maml_features():
    from metaleep.backbones.default import default_backbone
    from metaleep.backbones.wrap import study_backbone
    from metaleep.data.glyphs import load_glyphs
    from metaleep.data.splits import get_split
    from metaleep.episodes.suites import load_suite

    dataset = load_glyphs()
    backbone = study_backbone(
        default_backbone("maml", progress=False, dataset=dataset, split=get_split(dataset))
    )
    episodes = load_suite("glyphs-5w5s", dataset).episodes[:200]
    support = np.stack([ep.support for ep in episodes])
    query = np.stack([ep.query for ep in episodes])
    model = backbone.model.eval()
    with torch.no_grad():
        sf = model.features(dataset.batch(support.reshape(-1))).double()
        qf = model.features(dataset.batch(query.reshape(-1))).double()
    sy = torch.as_tensor(np.stack([ep.support_labels for ep in episodes]))
    qy = torch.as_tensor(np.stack([ep.query_labels for ep in episodes]))
    weight, bias = head_parameters(model)
    return (
        backbone,
        (sf.view(*support.shape, -1), sy, qf.view(*query.shape, -1), qy),
        (
            weight.double(),
            bias.double(),
        ),
    )


def test_anil_converges_to_retrain_head_accuracy_on_the_default_maml_backbone(maml_features):
    backbone, episode, head = maml_features
    anil = get_adaptation("anil")
    config = backbone_config("anil", backbone.algorithm, backbone.inner)
    assert config == anil.config  # not the training inner loop: the converging rule
    converged = anil.run_batch(*episode, ways=5, config=config, head=head)
    retrained = get_adaptation("retrain_head").run_batch(*episode, ways=5)
    training_rule = anil.run_batch(
        *episode, ways=5, head=head, config=config.__class__(steps=5, lr=backbone.inner["lr"])
    )
    # measured on these 200 episodes: 92.2 % (ANIL), 92.4 % (retrain head), 34.1 % before
    assert abs(converged.accuracy.mean() - retrained.accuracy.mean()) < 0.03
    assert training_rule.accuracy.mean() < 0.5
    # the support loss shows which one converged (measured 0.06 against 1.50; log 5 = 1.61)
    assert converged.support_loss.mean() < 0.15
    assert training_rule.support_loss.mean() > 1.0
    # the flat meta-learned head: its logits barely spread over the classes (measured 0.47)
    assert converged.start_logit_std.mean() < 1.0
    # both head adaptations converge (plain steps left retrain-head at 0.75)
    assert retrained.support_loss.mean() < 0.15


def test_the_default_maml_backbone_is_adapted_as_it_was_trained(maml_features):
    backbone, _, _ = maml_features
    assert backbone.algorithm == "maml"
    assert backbone.inner == {"steps": 1, "lr": 0.4, "first_order": False}
    config = backbone_config("maml", backbone.algorithm, backbone.inner)
    assert (config.steps, config.lr, config.first_order) == (1, 0.4, False)
