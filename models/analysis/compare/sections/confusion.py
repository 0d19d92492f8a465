"""Confusion matrices: every model's, as a figure and as text, and its most frequent mistakes."""
from models.analysis import metrics
from models.analysis.compare.markdown import bullets, figure_link, title_of
from models.analysis.compare.section import Section


def describe_confusions(evaluations):
    text = []
    for name, e in evaluations.items():
        mistakes = metrics.top_confusions(e.confusion, 3)
        if mistakes:
            text.append(f"The {title_of(name)}'s most frequent mistakes: " + ", ".join(
                f"{t} read as {p} ({n}x)" for t, p, n in mistakes) + ".")
        else:
            text.append(f"The {title_of(name)} makes no mistakes on these images.")
    return text


class ConfusionSection(Section):
    key = "confusion"
    title = "Confusion matrices"

    def figures(self, context, result, folder):
        from models.analysis import plots
        plots.plot_confusion_matrices({f"{title_of(name)} ({evaluation.n_images:,} test images)":
                                       evaluation.confusion for name, evaluation in context.evaluations.items()},
                                      folder / "confusion.png")
        return {"confusion": "confusion.png"}

    def markdown(self, context, result, figures):
        lines = ["Rows: true digit; columns: predicted digit.", "",
                 figure_link(figures, "confusion", "confusion matrices")]
        for name, evaluation in context.evaluations.items():
            lines += [f"{title_of(name)}:", "", "```", metrics.format_confusion(evaluation.confusion), "```", ""]
        return lines + bullets(describe_confusions(context.evaluations))
