"""Training: the run (trainer.py), its recipe and progress (config.py), checkpoints
(checkpoint.py) and teaching (teaching.py); every step is :class:`nn.step.TrainingStep`.
The command line is :mod:`models.commands.train`.

May import: ``models`` (the model files and registry), ``kit`` and ``nn``; never
``models.analysis``, ``models.commands`` or ``canvas``.
"""
