"""The comparison report: every shipped model (or the ones named) on the MNIST test images.

    python -m models.compare                                   # every shipped model
    python -m models.compare --models cnn,lstm,gru,rnn,mlp     # these, in this order
    python -m models.compare --models cnn,runs/my.npz          # a name or a weights file each
    python -m models.compare --pair cnn,lstm --out docs/compare
    python -m models.compare --threads 1                       # steadier speeds on a busy machine

Evaluates the models on the MNIST test images and writes ``report.md`` (plus ``report.json``
with every number, and PNG figures when matplotlib is installed) into ``--out``:

- per model: its description (from its model file), test accuracy, parameters, FLOPs per image,
  training speed measured in this run (a short timed training loop, batch 64), single-image
  prediction latency, training curves (from the history JSON beside the weights);
- per class: F1 side by side (precision and recall in the figure and the JSON), every confusion
  matrix, how often each model is right where another is wrong, and for one chosen pair
  (``--pair``, default the first two) the digits one gets right and the other wrong, both ways,
  and the digits both miss;
- robustness: accuracy of every model as the digits are shifted, rotated, scaled, blurred,
  noised or have rows blanked, one figure per perturbation, on a fixed subset of test images;
- "Does the LSTM remember longer?": for the recurrent models, the gradient norm ||dL/dh_t|| per
  row at initialisation and after training, and the accuracy when blank rows follow the digit
  (see :mod:`models.analysis.memory`).

Every accuracy carries its 95 % interval: the exact binomial interval of this single run or, with
``--study DIR``, the mean over the study's seeds +- its t interval; every sentence that compares
models says whether the difference is "significant at 5 %" or "not distinguishable at 5 %"
(:mod:`models.analysis.compare.intervals`).

Every sentence in the report is generated from the numbers it sits next to.  Seeds are fixed,
so two runs on the same weights and data give the same report except for the timings.

The package, one idea per module (a section reads the context and writes its own part):

    context.py        Context: the models, test images and labels, evaluations, seed
    perturbations.py  shift, rotate, rescale, blur, noise, blanked rows
    sweeps.py         the robustness sweeps and their fixed subset
    timing.py         training speed (nn.step.TrainingStep) and single-image latency
    intervals.py      how sure each number is: single-run intervals and tests, or over a study's
                      seeds (--study DIR), and the verdicts the sentences state
    markdown.py       titles, percentages, lists in words, tables, figure links
    section.py        Section: compute, figures, markdown, json - the one interface
    sections/         one module per section, in report order (sections.SECTIONS)
    report.py         runs the sections and writes report.md, report.json, the PNGs

Its command line (flags, checks, main) is :mod:`models.commands.compare`.

May import what :mod:`models.analysis` may (``models.training``, ``models``, ``kit``, ``nn``) and
the rest of ``models.analysis``.

Importing the package is light (no NumPy); the names below are imported on first use.
"""
_EXPORTS = {"Context": "context", "SEED": "context", "Section": "section",
            "SECTIONS": "sections", "default_sections": "sections", "write_report": "report"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    import importlib
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
