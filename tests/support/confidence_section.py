"""A report section that exists only for the tests: defined in this one module, it must reach
report.md and report.json of ``python -m models.compare`` when added to the section list, with
no other file changed.

"How sure is each model?": the mean probability a model gives its own answer, on all test images
and on the ones it gets wrong.
"""
import numpy as np

from models.analysis.compare.markdown import bullets, pct, table, title_of
from models.analysis.compare.section import Section


class ConfidenceSection(Section):
    key = "confidence"
    title = "How sure is each model?"

    def compute(self, context):
        result = {}
        for name, evaluation in context.evaluations.items():
            chosen = evaluation.probabilities[np.arange(evaluation.n_images), evaluation.predictions]
            wrong = ~evaluation.correct
            result[name] = {"mean": float(chosen.mean()),
                            "mean_when_wrong": float(chosen[wrong].mean()) if wrong.any() else None}
        return result

    def markdown(self, context, result, figures):
        rows = [[title_of(name), pct(r["mean"]), "-" if r["mean_when_wrong"] is None else pct(r["mean_when_wrong"])]
                for name, r in result.items()]
        surest = max(result, key=lambda name: result[name]["mean"])
        return [table(["model", "mean confidence", "when wrong"], rows), ""] + bullets(
            [f"The {title_of(surest)} is the surest of its answers ({pct(result[surest]['mean'])} on average)."])

    def json(self, context, result):
        return {"confidence": result}
