"""The statistics of a study and a grid: what the tidy tables say, computed, not drawn.

- :mod:`metaleep.analysis.correlations`: each metric's correlation with post-adaptation
  accuracy per group, with bootstrap CIs, and paired comparisons of metrics;
- :mod:`metaleep.analysis.regimes`: correlations within (ways, shots) cells and training seeds,
  combined by Fisher z, and the hierarchical bootstrap (seeds, then episodes);
- :mod:`metaleep.analysis.significance`: the selection-aware test of a setting's winner and
  Benjamini-Hochberg across settings;
- :mod:`metaleep.analysis.added`: the R^2 a metric adds over the design and the free baselines;
- :mod:`metaleep.analysis.selection`: source-model selection (does a metric pick the backbone
  that adapts best to each episode?), beside the static prior;
- :mod:`metaleep.analysis.grid`: the grid's per-setting correlations, wins by regime over
  distinct comparisons, their tests, robustness and stability, per-target source selection;
- :mod:`metaleep.analysis.baseline`: each metric against the free baseline (familywise), and
  each group's best metric;
- :mod:`metaleep.analysis.accuracy`: the accuracy of each adaptation and its convergence;
- :mod:`metaleep.analysis.study`: all of a study's analyses in one result object,
  :class:`~metaleep.analysis.study.StudyAnalysis`, which the report renders;
- :mod:`metaleep.analysis.resample` and :mod:`metaleep.analysis.tables`: the bootstrap engine
  and the tables' shared checks.

It reads tables and returns frames; rendering them is :mod:`metaleep.report`'s job.
"""
