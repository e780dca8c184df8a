"""Few-shot episodes: the recipe (:class:`EpisodeSpec`), the reproducible sampler, and suites."""

from metaleep.episodes.sampler import EpisodeSampler, episode_rng, label_index
from metaleep.episodes.spec import Episode, EpisodeSpec

__all__ = ["Episode", "EpisodeSampler", "EpisodeSpec", "episode_rng", "label_index"]
