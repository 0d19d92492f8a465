"""The application's bottom layer: data sets and their download, where files live, image handling
(:mod:`kit.images`: preprocessing a drawing, splitting a number, augmentation), command-line
helpers and the progress bar.

May import: ``nn`` and third-party libraries only; never ``models`` or ``canvas``.
"""
