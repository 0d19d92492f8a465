"""Analysis and reports: evaluation, metrics, the comparison report and its sections, the memory
section, saliency, the study views' computations, figures, and ``studies`` (many seeds on Dask
and their statistics; Dask is imported by ``studies.engine`` alone).

May import: ``models.training``, ``models`` (the model files and registry), ``kit`` and ``nn``;
never ``models.commands`` or ``canvas``.
"""
