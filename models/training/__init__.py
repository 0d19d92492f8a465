"""Training: the trainer, its one training step, checkpoints and teaching.

May import: ``models`` (the model files and registry), ``kit`` and ``nn``; never
``models.analysis``, ``models.commands`` or ``canvas``.
"""
