"""Rendering: a study's and a grid's results as HTML and Markdown pages and matplotlib figures.

- :mod:`metaleep.report.page`: a study's ``report.html`` / ``report.md`` and the tables it holds;
- :mod:`metaleep.report.plots`: the figures (scatter plots, correlation bars, selection);
- :mod:`metaleep.report.grid_page`: the grid's page and figures.

It draws what :mod:`metaleep.analysis` computed; matplotlib is imported where a figure is made.
"""
