"""The command lines of the kit's jobs (train, evaluate, compare, export, study, and the reader's
training command, reader.py): flags, checks, exit codes.

May import: ``models.analysis``, ``models.training``, ``models``, ``kit`` and ``nn``; never
``canvas`` (the ``cnn-vs-lstm`` dispatcher, which also starts the canvas, is ``canvas.main``).
"""
