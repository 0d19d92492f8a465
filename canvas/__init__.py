"""The pygame side of draw.py: the app (:mod:`canvas.app`), what it draws (:mod:`canvas.views`),
the study views' NumPy computations (:mod:`canvas.study`) and scripted drawing (:mod:`canvas.demo`).

The preprocessing that turns a drawing into an MNIST-style image is :mod:`models.preprocess`,
which needs no pygame.
"""
