"""Does the LSTM remember longer?  The report's words and figures for the two measurements of
:mod:`models.analysis.memory` (gradient norms per row, accuracy after blank rows) on the
recurrent models of the comparison.
"""
import numpy as np

from models.analysis import memory
from models.analysis.compare.intervals import (accuracy_cell, binomial_text, certainty, compare, decide, legend,
                                               seeds_text, verdict)
from models.analysis.compare.markdown import bullets, figure_link, join_words, number, pct, table, title_of
from models.analysis.compare.section import Section
from models.analysis.compare.sweeps import example_index
from models.analysis.studies.stats import binomial_interval, log_ratio_statistic

MEMORY_BAR = 0.90                     # "falls below 90 %" in the generated sentences


def _factor(ratio):
    """A factor to two significant digits: 6.4 -> '6.4', 513214 -> '510,000'."""
    rounded = float(f"{ratio:.2g}")
    return f"{rounded:,.0f}" if rounded >= 10 else f"{rounded:.1f}"


def _times(ratio, than=""):
    """A ratio g_T / g_1 in words: '3,400x smaller', '2.1x larger' (+ ``than``), or 'about as
    large' (+ ``than`` with 'as' for 'than') within 10 %."""
    if 1 / 1.1 < ratio < 1.1:
        return "about as large" + (" as" + than[len("than"):] if than else "")
    return (f"{_factor(ratio)}x smaller" if ratio >= 1 else f"{_factor(1 / ratio)}x larger") + (
        " " + than if than else "")


def describe_gradients(result, titles, sure=None):
    """Sentences on the gradient norms: for each model the ratio g_T / g_1, trained and initial;
    ``sure`` (a :class:`MemoryCertainty`) adds whether the compared ratios differ significantly."""
    text = []
    steps = result["steps"]
    ratios = {}
    for name in result["models"]:
        g = result["gradients"][name]
        trained, initial = g["trained"], g["initial"]
        ratios[name] = trained[-1] / trained[0] if trained[0] > 0 else float("inf")
        start = initial[-1] / initial[0] if initial[0] > 0 else float("inf")
        text.append(
            f"{titles[name]}: after training, the gradient reaching the state after row 1 is "
            f"{_times(ratios[name], f'than at row {steps}')} (mean ||dL/dh_1|| = {trained[0]:.2e}, "
            f"||dL/dh_{steps}|| = {trained[-1]:.2e}); freshly initialised (seed {g['seed']}) it "
            f"was {_times(start)} ({initial[0]:.2e} vs {initial[-1]:.2e}).")
    if len(ratios) >= 2:
        order = sorted(ratios, key=lambda name: ratios[name])
        best, worst = order[0], order[-1]
        text.append(
            f"Of the trained models, the {titles[best]} keeps the most gradient over the {steps} "
            f"steps and the {titles[worst]} the least: the {titles[worst]}'s ratio is "
            f"{_factor(ratios[worst] / ratios[best])}x the {titles[best]}'s"
            + (f": {verdict(decide([sure.gradient_test('trained', worst, best)])[0])}" if sure else "") + ".")
        initial = {name: result["gradients"][name]["initial"][-1] / result["gradients"][name]["initial"][0]
                   for name in result["models"]}
        order = sorted(initial, key=lambda name: initial[name])
        text.append(
            f"Freshly initialised, the {titles[order[-1]]} loses the most gradient between row {steps} "
            f"and row 1 ({_factor(initial[order[-1]])}x) and the {titles[order[0]]} the least "
            f"({_factor(initial[order[0]])}x)"
            + (f": {verdict(decide([sure.gradient_test('initial', order[-1], order[0])])[0])}" if sure else "")
            + ".")
    return text


def describe_blank_rows(result, titles, bar=MEMORY_BAR, sure=None):
    """Sentences on the blank-row accuracy: where each model falls below ``bar``, and the mean;
    ``sure`` (a :class:`MemoryCertainty`) writes each accuracy with its interval and adds whether
    the best and the worst model differ significantly from the next."""
    counts = result["blank_rows"]["counts"]
    accuracy = result["blank_rows"]["accuracy"]
    names = result["models"]
    bar_words = f"{bar * 100:.0f} %"
    say = sure.words if sure else (lambda name, index: f"{accuracy[name][index] * 100:.1f} %")
    text = []
    falls = {}
    for name in names:
        acc = accuracy[name]
        below = next((i for i, a in enumerate(acc) if a < bar), None)
        falls[name] = counts[below] if below is not None else None
        last = len(acc) - 1
        if below is None:
            text.append(f"The {titles[name]} stays at or above {bar_words} all the way to "
                        f"{counts[-1]} blank rows ({say(name, 0)} with none, "
                        f"{say(name, last)} with {counts[-1]}).")
        elif below == 0:
            text.append(f"The {titles[name]} is below {bar_words} even with no blank rows "
                        f"({say(name, 0)}).")
        elif below == 1:
            text.append(f"The {titles[name]} scores {say(name, 0)} with no blank rows and falls "
                        f"below {bar_words} already at {counts[1]} ({say(name, 1)}); after "
                        f"{counts[-1]} it scores {say(name, last)}.")
        else:
            text.append(f"The {titles[name]} scores {say(name, 0)} with no blank rows and "
                        f"{say(name, below - 1)} after {counts[below - 1]}, then falls below "
                        f"{bar_words} at {counts[below]} blank rows ({say(name, below)}); "
                        f"after {counts[-1]} it scores {say(name, last)}.")
    later = [i for i, k in enumerate(counts) if k > 0]
    if len(names) >= 2 and later:
        mean = {name: float(np.mean([accuracy[name][i] for i in later])) for name in names}
        order = sorted(names, key=lambda name: -mean[name])
        tested = ""
        if sure and len(names) == 2:
            tested = f": {verdict(decide([sure.blank_test(order[0], order[1], later)])[0])}"
        elif sure:
            best, worst = decide([sure.blank_test(order[0], order[1], later),
                                  sure.blank_test(order[-2], order[-1], later)])
            tested = (f"; the {titles[order[0]]} against the runner-up {titles[order[1]]}: {verdict(best)}; "
                      f"the {titles[order[-1]]} against the {titles[order[-2]]}: {verdict(worst)}")
        text.append(f"Averaged over k = {counts[later[0]]}..{counts[later[-1]]}: " + ", ".join(
            f"{titles[name]} {mean[name] * 100:.1f} %" for name in order)
            + f"; the {titles[order[0]]} holds the digit best and the {titles[order[-1]]} worst{tested}.")
    return text


class MemoryCertainty:
    """The memory measurements' intervals and tests: single run from each image's numbers, over
    seeds from the study's runs measured the same way on the same images (``seeds``: {name:
    {seed: {"trained": [T], "initial": [T], "blank_rows": [accuracy per k]}}})."""

    def __init__(self, result, seeds):
        self.result, self.seeds = result, seeds or {}

    def words(self, name, index):
        value = self.result["blank_rows"]["accuracy"][name][index]
        runs = self.seeds.get(name)
        if runs:
            return f"{100 * value:.1f} % ({seeds_text([run['blank_rows'][index] for run in runs.values()])})"
        return binomial_text(value, self.result["images"])

    def cell(self, name, index):
        value = self.result["blank_rows"]["accuracy"][name][index]
        runs = self.seeds.get(name)
        return accuracy_cell(value, self.result["images"],
                             [run["blank_rows"][index] for run in runs.values()] if runs else None)

    def gradient_test(self, kind, a, b):
        """Does log(g_T / g_1) of the ``kind`` ('trained' or 'initial') models a and b differ?"""
        per_seed = [{seed: float(np.log(run[kind][-1] / run[kind][0])) for seed, run in self.seeds.get(name, {}).items()}
                    for name in (a, b)]
        rows = [self.result["per_image"][name][kind][:, [0, -1]] for name in (a, b)]
        return compare(per_seed, (*rows, log_ratio_statistic))

    def blank_test(self, a, b, indices):
        """Do the two models' accuracies averaged over the blank-row counts ``indices`` differ?"""
        per_seed = [{seed: float(np.mean([run["blank_rows"][i] for i in indices]))
                     for seed, run in self.seeds.get(name, {}).items()} for name in (a, b)]
        correct = [self.result["per_image"][name]["blank_rows"][indices].mean(axis=0) for name in (a, b)]
        return compare(per_seed, tuple(correct))


def memory_over_seeds(context, names):
    """{name: {seed: {"trained", "initial", "blank_rows"}}}: the study's runs of the recurrent
    models measured like the weights compared, on the same images; {} without a study."""
    study = certainty(context).study
    if study is None:
        return {}
    found = {}
    subset = context.subset
    for name in names:
        for seed, model in study.models(name).items():
            context.log(f"memory: the study's {title_of(name)}, seed {seed}")
            measured = memory.measure({name: model}, context.images[subset], context.labels[subset])
            found.setdefault(name, {})[seed] = {"trained": measured["gradients"][name]["trained"],
                                                "initial": measured["gradients"][name]["initial"],
                                                "blank_rows": measured["blank_rows"]["accuracy"][name]}
    return found


class MemorySection(Section):
    key = "memory"
    title = "Does the LSTM remember longer?"

    def compute(self, context):
        subset = context.subset
        context.log("memory: hidden-state gradients and blank rows")
        result = memory.measure(context.models, context.images[subset], context.labels[subset], log=context.log)
        result["over_seeds"] = memory_over_seeds(context, result["models"])
        return result

    def figures(self, context, result, folder):
        if not result["models"]:
            return {}
        from models.analysis import plots
        color = {name: plots.model_color(i) for i, name in enumerate(context.names)}
        series = []
        for name in result["models"]:
            g = result["gradients"][name]
            series.append({"label": f"{title_of(name)} trained", "values": g["trained"],
                           "color": color[name], "linestyle": "-"})
            series.append({"label": f"{title_of(name)} at initialisation", "values": g["initial"],
                           "color": color[name], "linestyle": ":"})
        plots.plot_gradient_norms(folder / "memory_gradients.png",
                                  f"Gradient reaching the state after each row (mean over "
                                  f"{result['gradient_images']:,} test images)",
                                  list(range(1, result["steps"] + 1)), series)
        blank = result["blank_rows"]
        example = context.images[example_index(context.labels)]
        plots.plot_sweep(folder / "memory_blank_rows.png", "Accuracy with k blank rows after the digit",
                         "k, blank rows appended below the 28 rows of the digit", blank["counts"],
                         [{"label": title_of(name), "accuracy": blank["accuracy"][name],
                           "color": color[name], "band": blank_band(result, name)} for name in result["models"]],
                         [("input", [memory.append_blank_rows(example[None], k)[0] for k in blank["counts"]])],
                         level_format=number)
        return {"memory_gradients": "memory_gradients.png", "memory_blank_rows": "memory_blank_rows.png"}

    def markdown(self, context, result, figures):
        return memory_lines(result, figures)

    def json(self, context, result):
        """Every number but the per-image ones (they are what the tests read)."""
        return {"memory": {key: value for key, value in result.items() if key != "per_image"}}


def blank_band(result, name):
    """(lowest, highest) accuracy per blank-row count drawn around the curve: over the study's
    seeds, else the single-run exact 95 % interval over the images."""
    runs = result.get("over_seeds", {}).get(name)
    if runs:
        values = np.array([run["blank_rows"] for run in runs.values()])
        return values.min(axis=0).tolist(), values.max(axis=0).tolist()
    intervals = [binomial_interval(int(round(value * result["images"])), result["images"])
                 for value in result["blank_rows"]["accuracy"][name]]
    return [i["low"] for i in intervals], [i["high"] for i in intervals]


def memory_lines(memory_result, figures):
    """The text of the section: what each measurement is, its table, and the sentences."""
    names = memory_result["models"]
    lines = ["The original app's README says the LSTM \"solves the problem of long-term dependency\" "
             "that a standard recurrent network has. Two measurements, made with the kit's own "
             "backward pass and the same recurrent layers that trained the models, test that claim "
             "on MNIST read row by row.", ""]
    if not names:
        return lines + ["None of the compared models is recurrent, so there is nothing to measure "
                        "here; add `rnn`, `lstm` or `gru` to `--models`.", ""]
    steps = memory_result["steps"]
    lines += [f"Recurrent models compared: {join_words(title_of(name) for name in names)}.", "",
              "### How much gradient reaches the early rows", "",
              f"For each row t = 1..{steps}, the length of dL/dh_t, the gradient of an image's loss "
              f"with respect to the hidden state after reading row t, averaged over the first "
              f"{memory_result['gradient_images']:,} images of the robustness subset (inference mode, "
              f"each image's own loss). It is what the backward pass computes on its way from the "
              f"answer back to the first row: training can only learn from row t what this "
              f"gradient carries back to it. A vanishing gradient is a curve that falls by many "
              f"orders of magnitude from the right (row {steps}, where the answer is read) to the left. "
              f"Dotted: the same model freshly initialised with the seed it was trained from; solid: "
              f"the shipped weights. (The top rows of an MNIST digit are mostly empty, so a trained "
              f"model may also have learned that they do not matter.) A sentence comparing two models' "
              f"ratios g_{steps} / g_1 says whether they differ: "
              + ("over the study's seeds (a paired t-test of the per-seed log ratios) where it has both models, "
                 "else " if memory_result.get("over_seeds") else "")
              + "on this single run by a paired permutation test over the images.", "",
              figure_link(figures, "memory_gradients", "gradient norm per timestep, log scale")]
    header = ["t"] + [f"{title_of(name)} {kind}" for name in names for kind in ("initial", "trained")]
    shown = sorted({1, 2, 4, 7, 10, 14, 18, 21, 24, 26, 27, steps} & set(range(1, steps + 1)))
    rows = [[t] + [f"{memory_result['gradients'][name][kind][t - 1]:.2e}" for name in names
                   for kind in ("initial", "trained")] for t in shown]
    lines += [table(header, rows), "",
              "Selected rows; every value is in `report.json` (`memory.gradients`).", ""]
    sure = MemoryCertainty(memory_result, memory_result.get("over_seeds")) if "per_image" in memory_result else None
    seeds = bool(memory_result.get("over_seeds"))
    lines += bullets(describe_gradients(memory_result, {name: title_of(name) for name in names}, sure))
    blank = memory_result["blank_rows"]
    lines += ["### How long the digit is held", "",
              f"What this measures: each recurrent model reads the {steps} rows of the digit, then k "
              f"more rows of black pixels, and only then answers. The blank rows carry no information, "
              f"so the digit survives only in the model's state, and the accuracy after k blank rows "
              f"says how long the model can hold the digit in its state while reading rows that say "
              f"nothing. The models never saw such input in training (they always answered after row "
              f"{steps}), so this tests how stable their memory is, not something they were taught. "
              f"Measured on the {memory_result['images']:,} images of the robustness subset; the row "
              f"of pictures shows one input at each k. The shaded band around each curve: "
              + ("the study's seeds of that model, from the lowest to the highest (the same measurement on "
                 "each seed's weights)." if seeds else
                 "the single-run exact 95 % interval over the images (no study: the test images' luck, not "
                 "the training seed's).") + " Comparisons are decided "
              + ("over the study's seeds where it has both models, else " if seeds else "")
              + "image by image on this run (a paired permutation test of the accuracies averaged over k).", "",
              figure_link(figures, "memory_blank_rows", "accuracy against blank rows appended")]
    cell = sure.cell if sure else (lambda name, i: pct(blank["accuracy"][name][i]))
    rows = [[k] + [cell(name, i) for name in names] for i, k in enumerate(blank["counts"])]
    lines += [legend(seeds, memory_result["images"]), "",
              table(["blank rows k"] + [title_of(name) for name in names], rows), ""]
    lines += bullets(describe_blank_rows(memory_result, {name: title_of(name) for name in names}, sure=sure))
    return lines
