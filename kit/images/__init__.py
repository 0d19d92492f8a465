"""Image handling: a drawing turned into MNIST's convention (preprocess), a number split into digits
(segment), and the random distortions training uses (augment).

May import: ``nn`` and NumPy only.
"""
