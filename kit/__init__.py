"""The application around the library: data sets and their download, where files live,
augmentation of digit images, command-line helpers and the progress bar.

:mod:`nn` is the library and knows nothing of these; :mod:`models`, :mod:`canvas` and the
scripts use both.
"""
