"""The top of the application: the drawing window of draw.py, and ``cnn-vs-lstm`` (:mod:`canvas.main`),
the one command that starts every job.

The window is :mod:`canvas.app`, what it draws :mod:`canvas.views`, scripted drawing
:mod:`canvas.demo`, the check that a display is there :mod:`canvas.display`, its command line
:mod:`canvas.cli`.  The computations it shows need no pygame and live below it: a drawing turned
into MNIST-style images (:mod:`kit.images.preprocess`), a number split into digits
(:mod:`kit.images.segment`), saliency and the study views (:mod:`models.analysis`), teaching
(:mod:`models.training.teaching`).

May import: everything below it (``models.commands``, ``models.analysis``, ``models.training``,
``models``, ``kit``, ``nn``); nothing of the kit imports it.
"""
import os

# pygame prints a banner when imported unless this is set; the package runs first, before any
# of its modules imports pygame.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
