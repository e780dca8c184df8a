"""Rendering: a study's and a grid's results as HTML and Markdown pages and matplotlib figures.

- :mod:`metaleep.report.page`: a study's ``report.html`` / ``report.md``, drawn from a
  :class:`~metaleep.analysis.study.StudyAnalysis`: the verdict, the forest figure, the details,
  the configuration;
- :mod:`metaleep.report.plots`: the figures (forest plot, scatter plots, selection);
- :mod:`metaleep.report.grid_page`: the grid's page and figures;
- :mod:`metaleep.report.document`: the page builder both use.

It draws what :mod:`metaleep.analysis` computed and computes nothing itself; matplotlib is
imported where a figure is made.
"""
