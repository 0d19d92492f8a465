"""Where they disagree: for every two models the images one gets right and the other wrong, how
the errors overlap, and for the chosen pair (``--pair``) the digits themselves, both ways, and
the digits both miss.
"""
import numpy as np

from models.analysis.compare.intervals import certainty
from models.analysis.compare.markdown import all_models, bullets, figure_link, table, title_of
from models.analysis.compare.section import Section

GRID_IMAGES = 40         # digits shown per grid, the most confident mistakes first


def disagreements(evaluations, pair):
    """For the pair (a, b): indices where exactly one is right (each way), and where both are wrong."""
    a, b = pair
    ea, eb = evaluations[a], evaluations[b]
    return {f"{a}_right_{b}_wrong": np.flatnonzero(ea.correct & ~eb.correct),
            f"{b}_right_{a}_wrong": np.flatnonzero(eb.correct & ~ea.correct),
            f"{a}_{b}_both_wrong": np.flatnonzero(~ea.correct & ~eb.correct)}


def right_where_wrong(evaluations):
    """``{a: {b: count}}``: the images model a gets right and model b gets wrong (a != b)."""
    return {a: {b: int((ea.correct & ~eb.correct).sum()) for b, eb in evaluations.items() if b != a}
            for a, ea in evaluations.items()}


def error_overlap(evaluations):
    """How the models' errors overlap: images every model misses (and of those, how many get the
    same wrong answer from all), and per model the images only it misses / only it gets right."""
    correct = np.stack([e.correct for e in evaluations.values()])          # (M, N)
    predictions = np.stack([e.predictions for e in evaluations.values()])  # (M, N)
    all_wrong = ~correct.any(axis=0)
    same = all_wrong & (predictions == predictions[0]).all(axis=0)
    names = list(evaluations)
    wrong_count = (~correct).sum(axis=0)
    return {"all_wrong": int(all_wrong.sum()), "all_wrong_same_answer": int(same.sum()),
            "only_wrong": {name: int((~correct[i] & (wrong_count == 1)).sum()) for i, name in enumerate(names)},
            "only_right": {name: int((correct[i] & (wrong_count == len(names) - 1)).sum())
                           for i, name in enumerate(names)} if len(names) > 2 else None}


def describe_overlap(evaluations, overlap):
    names = list(evaluations)
    n = evaluations[names[0]].n_images
    text = [f"Of the {n:,} images, {all_models(names)} miss {overlap['all_wrong']:,} "
            f"({overlap['all_wrong_same_answer']:,} of those with the same wrong answer from every model)."]
    if len(names) > 2:
        text.append("Images only one model gets wrong: " + ", ".join(
            f"{title_of(name)} {overlap['only_wrong'][name]:,}" for name in names)
            + "; images only one model gets right: " + ", ".join(
            f"{title_of(name)} {overlap['only_right'][name]:,}" for name in names) + ".")
    return text


def describe_disagreements(evaluations, groups, pair, sure=None):
    """The pair's counts; with ``sure`` (the report's Certainty) whether the two differ: McNemar's
    exact test on exactly these counts (Holm across every pair of the report) and, with a study
    that has both, first the paired t-test over its seeds."""
    a, b = pair
    n = evaluations[a].n_images
    both = groups[f"{a}_{b}_both_wrong"]
    same = int((evaluations[a].predictions[both] == evaluations[b].predictions[both]).sum())
    text = (f"Of the {n:,} images, the {title_of(a)} gets {len(groups[f'{a}_right_{b}_wrong']):,} right "
            f"that the {title_of(b)} gets wrong, the {title_of(b)} gets "
            f"{len(groups[f'{b}_right_{a}_wrong']):,} right that the {title_of(a)} gets wrong, and both "
            f"miss {len(both):,} ({same:,} of those with the same wrong answer)")
    if sure is not None:
        text += f". The difference between the two is {sure.accuracy_verdicts(a, b)}"
    return [text + "."]


def _caption_pair(evaluations, pair, i):
    a, b = pair
    return (f"{title_of(a)} {evaluations[a].predictions[i]}  {title_of(b)} {evaluations[b].predictions[i]}\n"
            f"true {evaluations[a].labels[i]}")


def _order_by_confidence(evaluation_list, index):
    """Most confident wrong answers first: the largest probability among the wrong models."""
    if len(index) == 0:
        return index
    confidence = np.zeros(len(index))
    for e in evaluation_list:
        wrong = ~e.correct[index]
        confidence = np.maximum(confidence, np.where(wrong, e.probabilities[index, e.predictions[index]], 0))
    return index[np.argsort(-confidence, kind="stable")]


def _pair_groups(pair):
    """(key, title, index into the pair of the models that are wrong) of the three grids."""
    a, b = pair
    return [(f"{a}_right_{b}_wrong", f"{title_of(a)} right, {title_of(b)} wrong", (b,)),
            (f"{b}_right_{a}_wrong", f"{title_of(b)} right, {title_of(a)} wrong", (a,)),
            (f"{a}_{b}_both_wrong", f"{title_of(a)} and {title_of(b)} both wrong", (a, b))]



class DisagreementSection(Section):
    key = "disagreement"
    title = "Where they disagree"

    def compute(self, context):
        return {"groups": disagreements(context.evaluations, context.pair),
                "right_where_wrong": right_where_wrong(context.evaluations),
                "error_overlap": error_overlap(context.evaluations)}

    def figures(self, context, result, folder):
        from models.analysis import plots
        evaluations, pair, figures = context.evaluations, context.pair, {}
        for key, title, wrong in _pair_groups(pair):
            index = _order_by_confidence([evaluations[name] for name in wrong], result["groups"][key])
            if len(index) == 0:
                continue  # the report says "None." instead of showing an empty grid
            shown = index[:GRID_IMAGES]
            plots.plot_digit_grid(context.images[shown], [_caption_pair(evaluations, pair, i) for i in shown],
                                  folder / f"{key}.png",
                                  f"{title}: {len(shown)} of {len(index):,}, most confident mistakes first",
                                  colors=["black"] * len(shown))
            figures[key] = f"{key}.png"
        return figures

    def markdown(self, context, result, figures):
        e, names, groups = context.evaluations, context.names, result["groups"]
        lines = ["Images the row's model gets right and the column's model gets wrong:", ""]
        matrix = result["right_where_wrong"]
        rows = [[f"{title_of(a)} right"] + ["-" if a == b else f"{matrix[a][b]:,}" for b in names] for a in names]
        lines += [table(["", *[f"{title_of(b)} wrong" for b in names]], rows), ""]
        lines += bullets(describe_overlap(e, result["error_overlap"]))
        a, b = context.pair
        lines += [f"### {title_of(a)} and {title_of(b)}", "",
                  f"The pair chosen with `--pair {a},{b}` (default: the first two models), image by image.", ""]
        lines += bullets(describe_disagreements(e, groups, context.pair, certainty(context)))
        for key, title, _ in _pair_groups(context.pair):
            count = len(groups[key])
            lines += [f"#### {title} ({count:,})", "",
                      (f"Showing the {min(count, GRID_IMAGES)} most confident mistakes; each digit is "
                       f"captioned with both models' answers and the true label." if count else "None."), ""]
            if count:
                lines += [figure_link(figures, key, title)]
        return lines

    def json(self, context, result):
        return {"right_where_wrong": result["right_where_wrong"], "error_overlap": result["error_overlap"],
                "disagreements": {key: len(value) for key, value in result["groups"].items()}}
