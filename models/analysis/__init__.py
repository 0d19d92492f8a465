"""Analysis and reports: evaluation, metrics, the comparison report and its sections, the memory
section, saliency, the study views' computations, figures.

May import: ``models.training``, ``models`` (the model files and registry), ``kit`` and ``nn``;
never ``models.commands`` or ``canvas``.
"""
