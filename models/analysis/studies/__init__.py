"""Studies: a grid of training runs (models x seeds x settings) on Dask, and its statistics.

- :mod:`.cell`: one cell of the grid, an ordinary run of the trainer
  (:func:`models.training.trainer.train`) on whatever machine runs it; it returns the run's files
  (weights, history, test-set predictions) instead of writing them, so a worker needs no access
  to the study folder, only to its own MNIST folder.
- :mod:`.folder`: the study folder: one subfolder per cell, written atomically, ``result.json``
  last (a cell is done when its result file exists), and reading the results back.
- :mod:`.engine`: the grid on Dask distributed (an embedded ``LocalCluster`` or an existing
  scheduler): skips finished cells, retries failed ones a bounded number of times, shows
  progress and stops cleanly on Ctrl-C.  Dask (the ``study`` extra) is imported here only.
- :mod:`.stats`: means, standard deviations and t intervals over seeds, paired t-tests,
  McNemar's exact test, Holm's correction (SciPy's distributions).
- :mod:`.report`: the study report (markdown, JSON, CSV, figures).

The command line is :mod:`models.commands.study` (``python -m models.study``, ``cnn-vs-lstm study``).

May import: ``models.training``, ``models``, ``kit`` and ``nn`` (and dask, scipy, matplotlib);
never ``models.commands`` or ``canvas``.
"""
