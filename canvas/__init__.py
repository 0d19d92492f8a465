"""The pygame side of draw.py: the app (:mod:`canvas.app`), what it draws (:mod:`canvas.views`),
the study views' NumPy computations (:mod:`models.analysis.study`), scripted drawing (:mod:`canvas.demo`)
and the check that a display is there to draw on (:mod:`canvas.display`).

The pure computations the app relies on need no pygame: turning a drawing into MNIST-style
images (:mod:`kit.images.preprocess`), splitting a number into digits (:mod:`kit.images.segment`),
saliency and occlusion (:mod:`models.analysis.saliency`) and teaching (:mod:`models.training.teaching`).
"""
import os

# pygame prints a banner when imported unless this is set; the package runs first, before any
# of its modules imports pygame.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
