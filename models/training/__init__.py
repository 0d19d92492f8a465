"""Training: the run (trainer.py), what it trains on (digit_data.py for the per-digit models,
reader_data.py for the number reader), its recipe and progress (config.py), checkpoints
(checkpoint.py) and teaching (teaching.py); every step is :class:`nn.step.TrainingStep`.
The command lines are :mod:`models.commands.train` and :mod:`models.commands.reader` (reader.py
here is only the entry module behind ``python -m models.training.reader``).

May import: ``models`` (the model files and registry), ``kit`` and ``nn``; never
``models.analysis``, ``models.commands`` or ``canvas`` (the entry module reader.py aside, which
runs its command line).
"""
