"""Does the LSTM remember longer?  The report's words and figures for the two measurements of
:mod:`models.analysis.memory` (gradient norms per row, accuracy after blank rows) on the
recurrent models of the comparison.
"""
import numpy as np

from models.analysis import memory
from models.analysis.compare.markdown import bullets, figure_link, join_words, number, pct, table, title_of
from models.analysis.compare.section import Section
from models.analysis.compare.sweeps import example_index

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


def describe_gradients(result, titles):
    """Sentences on the gradient norms: for each model the ratio g_T / g_1, trained and initial."""
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
            f"{_factor(ratios[worst] / ratios[best])}x the {titles[best]}'s.")
        initial = {name: result["gradients"][name]["initial"][-1] / result["gradients"][name]["initial"][0]
                   for name in result["models"]}
        order = sorted(initial, key=lambda name: initial[name])
        text.append(
            f"Freshly initialised, the {titles[order[-1]]} loses the most gradient between row {steps} "
            f"and row 1 ({_factor(initial[order[-1]])}x) and the {titles[order[0]]} the least "
            f"({_factor(initial[order[0]])}x).")
    return text


def describe_blank_rows(result, titles, bar=MEMORY_BAR):
    """Sentences on the blank-row accuracy: where each model falls below ``bar``, and the mean."""
    counts = result["blank_rows"]["counts"]
    accuracy = result["blank_rows"]["accuracy"]
    names = result["models"]
    bar_words = f"{bar * 100:.0f} %"
    text = []
    falls = {}
    for name in names:
        acc = accuracy[name]
        below = next((i for i, a in enumerate(acc) if a < bar), None)
        falls[name] = counts[below] if below is not None else None
        if below is None:
            text.append(f"The {titles[name]} stays at or above {bar_words} all the way to "
                        f"{counts[-1]} blank rows ({acc[0] * 100:.1f} % with none, "
                        f"{acc[-1] * 100:.1f} % with {counts[-1]}).")
        elif below == 0:
            text.append(f"The {titles[name]} is below {bar_words} even with no blank rows "
                        f"({acc[0] * 100:.1f} %).")
        elif below == 1:
            text.append(f"The {titles[name]} scores {acc[0] * 100:.1f} % with no blank rows and falls "
                        f"below {bar_words} already at {counts[1]} ({acc[1] * 100:.1f} %); after "
                        f"{counts[-1]} it scores {acc[-1] * 100:.1f} %.")
        else:
            text.append(f"The {titles[name]} scores {acc[0] * 100:.1f} % with no blank rows and "
                        f"{acc[below - 1] * 100:.1f} % after {counts[below - 1]}, then falls below "
                        f"{bar_words} at {counts[below]} blank rows ({acc[below] * 100:.1f} %); "
                        f"after {counts[-1]} it scores {acc[-1] * 100:.1f} %.")
    later = [i for i, k in enumerate(counts) if k > 0]
    if len(names) >= 2 and later:
        mean = {name: float(np.mean([accuracy[name][i] for i in later])) for name in names}
        order = sorted(names, key=lambda name: -mean[name])
        text.append(f"Averaged over k = {counts[later[0]]}..{counts[later[-1]]}: " + ", ".join(
            f"{titles[name]} {mean[name] * 100:.1f} %" for name in order)
            + f"; the {titles[order[0]]} holds the digit best and the {titles[order[-1]]} worst.")
    return text


class MemorySection(Section):
    key = "memory"
    title = "Does the LSTM remember longer?"

    def compute(self, context):
        subset = context.subset
        context.log("memory: hidden-state gradients and blank rows")
        return memory.measure(context.models, context.images[subset], context.labels[subset], log=context.log)

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
                           "color": color[name]} for name in result["models"]],
                         [("input", [memory.append_blank_rows(example[None], k)[0] for k in blank["counts"]])],
                         level_format=number)
        return {"memory_gradients": "memory_gradients.png", "memory_blank_rows": "memory_blank_rows.png"}

    def markdown(self, context, result, figures):
        return memory_lines(result, figures)

    def json(self, context, result):
        return {"memory": result}


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
              f"model may also have learned that they do not matter.)", "",
              figure_link(figures, "memory_gradients", "gradient norm per timestep, log scale")]
    header = ["t"] + [f"{title_of(name)} {kind}" for name in names for kind in ("initial", "trained")]
    shown = sorted({1, 2, 4, 7, 10, 14, 18, 21, 24, 26, 27, steps} & set(range(1, steps + 1)))
    rows = [[t] + [f"{memory_result['gradients'][name][kind][t - 1]:.2e}" for name in names
                   for kind in ("initial", "trained")] for t in shown]
    lines += [table(header, rows), "",
              "Selected rows; every value is in `report.json` (`memory.gradients`).", ""]
    lines += bullets(describe_gradients(memory_result, {name: title_of(name) for name in names}))
    blank = memory_result["blank_rows"]
    lines += ["### How long the digit is held", "",
              f"What this measures: each recurrent model reads the {steps} rows of the digit, then k "
              f"more rows of black pixels, and only then answers. The blank rows carry no information, "
              f"so the digit survives only in the model's state, and the accuracy after k blank rows "
              f"says how long the model can hold the digit in its state while reading rows that say "
              f"nothing. The models never saw such input in training (they always answered after row "
              f"{steps}), so this tests how stable their memory is, not something they were taught. "
              f"Measured on the {memory_result['images']:,} images of the robustness subset; the row "
              f"of pictures shows one input at each k.", "",
              figure_link(figures, "memory_blank_rows", "accuracy against blank rows appended")]
    rows = [[k] + [pct(blank["accuracy"][name][i]) for name in names] for i, k in enumerate(blank["counts"])]
    lines += [table(["blank rows k"] + [title_of(name) for name in names], rows), ""]
    lines += bullets(describe_blank_rows(memory_result, {name: title_of(name) for name in names}))
    return lines
