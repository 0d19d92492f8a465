"""The study report: ``DIR/report.md``, ``DIR/results.json``, ``DIR/results.csv`` and figures.

    write_report("studies/quick")     # -> studies/quick/report.md

The markdown has the accuracy table (mean, sd and 95 % t interval over seeds), one generated
sentence per compared pair ("significant at 5 %" / "not distinguishable at 5 %"), the tests
behind each sentence, and the figures: validation accuracy per epoch as the mean over seeds
with a band from the lowest to the highest seed, and the test accuracy with its interval as an
error bar.  Every file is written atomically; nothing names a folder of the machine.
"""
import csv
import io
import json
from pathlib import Path

import numpy as np

from nn.serialize import atomic_write_text

from .analysis import analyse, sentence, title_of
from .folder import MANIFEST, load_results, read_json

CSV_COLUMNS = ("model", "setting", "n", "accuracy_mean", "accuracy_sd", "accuracy_low",
               "accuracy_high", "test_images", "seeds", "accuracies")


def percent(value, digits=2):
    return "-" if value is None else f"{100 * value:.{digits}f}"


def results_csv(groups):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for group in groups:
        row = [group[column] for column in CSV_COLUMNS]
        row[-2] = " ".join(map(str, group["seeds"]))
        row[-1] = " ".join(f"{value:.6f}" for value in group["accuracies"])
        writer.writerow(["" if value is None else value for value in row])
    return out.getvalue()


def markdown(numbers, manifest, figures):
    lines = ["# How sure are we? A study over seeds", ""]
    # Models and seeds as the finished cells have them (a later, smaller command may have
    # rewritten study.json); the recipe's other choices from study.json.
    models = list(dict.fromkeys(group["title"] for group in numbers["groups"]))
    seeds = sorted({seed for group in numbers["groups"] for seed in group["seeds"]})
    recipe = [f"models {', '.join(models)}", f"seeds {', '.join(map(str, seeds))}"]
    if manifest:
        recipe += [f"--set {item}" for item in manifest.get("settings", [])]
        recipe.append(f"epochs {manifest['epochs']}" if manifest.get("epochs") else "each model's recipe epochs")
        if manifest.get("limit"):
            recipe.append(f"the first {manifest['limit']:,} training and test images")
    lines += ["Finished cells: " + "; ".join(recipe) + ".", ""]
    lines += ["## Test accuracy over seeds", "",
              "Mean, sample standard deviation and 95 % t interval (mean +- t(0.975, n-1) sd / sqrt(n)) "
              "of each model's test accuracy, in %.", "",
              "| model | setting | seeds | mean | sd | 95 % interval | test images |",
              "|---|---|---:|---:|---:|---|---:|"]
    for group in numbers["groups"]:
        interval = ("-" if group["accuracy_low"] is None
                    else f"{percent(group['accuracy_low'])} - {percent(group['accuracy_high'])}")
        lines.append(f"| {group['title']} | {group['setting']} | {group['n']} | "
                     f"{percent(group['accuracy_mean'])} | {percent(group['accuracy_sd'], 3)} | "
                     f"{interval} | {group['test_images']:,} |")
    lines += ["", "## Which differences are real?", "",
              f"Each pair of models under one setting; Holm's correction across the pairs of a "
              f"setting, decisions at {100 * numbers['alpha']:g} %.", ""]
    lines += [f"- {sentence(pair)}" for pair in numbers["pairs"]] or ["- (only one model: nothing to compare)"]
    if numbers["pairs"]:
        lines += ["", "| pair | setting | seeds | mean difference (points) | paired t | p | Holm p | "
                  "McNemar p per seed (only A right / only B right) |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for pair in numbers["pairs"]:
            t = pair["paired_t"]
            per_seed = ", ".join(f"{entry['p']:.3g} ({entry['only_a']}/{entry['only_b']})"
                                 for entry in pair["mcnemar"])
            lines.append(f"| {pair['title_a']} - {pair['title_b']} | {pair['setting']} | {len(pair['seeds'])} | "
                         f"{100 * pair['mean_difference']:+.3f} | "
                         f"{'-' if t is None or t['t'] is None else format(t['t'], '.3f')} | "
                         f"{'-' if t is None else format(t['p'], '.3g')} | "
                         f"{'-' if t is None else format(t['p_holm'], '.3g')} | {per_seed} |")
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{title}]({name})" for title, name in figures]
    lines += ["", "Numbers: `results.json` (everything above), `results.csv` (the accuracy table). "
              "Regenerate with `python -m models.study report DIR`.", ""]
    return "\n".join(lines)


def plot_curves(results, path):
    """Validation accuracy per epoch: mean over seeds, band from the lowest to the highest seed."""
    from models.analysis.plots import _figure, _save, model_color
    figure = _figure(7, 4)
    axes = figure.subplots()
    groups = {}
    for result in results:
        label = title_of(result["model"]) + ("" if not result["settings"] else " " + " ".join(
            f"{k}={v}" for k, v in sorted(result["settings"].items())))
        groups.setdefault(label, []).append([100 * (e["val_accuracy"] if e["val_accuracy"] is not None
                                                    else e["train_accuracy"]) for e in result["history"]])
    for index, (label, curves) in enumerate(groups.items()):
        length = min(len(curve) for curve in curves)
        if length == 0:
            continue
        values = np.array([curve[:length] for curve in curves])
        epochs = np.arange(1, length + 1)
        color, mean = model_color(index), values.mean(axis=0)
        label = f"{label} ({len(curves)} seeds)"
        if length == 1:   # one epoch: a band has no width to show; the same range as an error bar
            axes.errorbar(epochs, mean, yerr=[mean - values.min(axis=0), values.max(axis=0) - mean],
                          fmt="o", color=color, capsize=6, label=label)
            continue
        axes.plot(epochs, mean, color=color, marker=".", label=label)
        axes.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color, alpha=0.2)
    longest = max((len(curve) for curves in groups.values() for curve in curves), default=1)
    axes.set_xlim(0.5, longest + 0.5)
    if longest <= 20:
        axes.set_xticks(range(1, longest + 1))
    else:
        from matplotlib.ticker import MaxNLocator
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title("validation accuracy (%): mean over seeds, band: lowest to highest seed", fontsize=10)
    axes.set(xlabel="epoch")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_accuracy(groups, path):
    """Test accuracy per model and setting: the mean with its 95 % interval, each seed a dot."""
    from models.analysis.plots import _figure, _save, model_color
    figure = _figure(max(5.5, 1.2 * len(groups) + 2), 4)
    axes = figure.subplots()
    for index, group in enumerate(groups):
        mean = 100 * group["accuracy_mean"]
        error = None
        if group["accuracy_low"] is not None:
            error = [[mean - 100 * group["accuracy_low"]], [100 * group["accuracy_high"] - mean]]
        axes.errorbar([index], [mean], yerr=error, fmt="o", color=model_color(index), capsize=6)
        axes.scatter([index] * group["n"], [100 * value for value in group["accuracies"]],
                     color=model_color(index), alpha=0.4, s=12)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels([f"{g['title']}\n{g['setting']}" if g["setting"] != "default" else g["title"]
                          for g in groups], fontsize=8)
    axes.set_title("test accuracy (%): mean and 95 % interval over seeds\n(dots: one seed each)", fontsize=10)
    axes.set_xlim(-0.5, len(groups) - 0.5)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return _save(figure, path)


def write_report(study, figures=True):
    """Write the report of the study folder ``study``; returns the report's path."""
    study = Path(study)
    results = load_results(study)
    numbers = analyse(results)
    manifest = read_json(study / MANIFEST) if (study / MANIFEST).exists() else None
    drawn = []
    if figures:
        from models.analysis.plots import require_matplotlib
        require_matplotlib("the study report's figures (or --no-figures)")
        plot_curves(results, study / "curves.png")
        plot_accuracy(numbers["groups"], study / "accuracy.png")
        drawn = [("validation accuracy over epochs, band over seeds", "curves.png"),
                 ("test accuracy with 95 % intervals", "accuracy.png")]
    document = {**numbers, "sentences": [sentence(pair) for pair in numbers["pairs"]],
                "manifest": manifest}
    atomic_write_text(study / "results.json", json.dumps(document, indent=2) + "\n")
    atomic_write_text(study / "results.csv", results_csv(numbers["groups"]))
    path = study / "report.md"
    atomic_write_text(path, markdown(numbers, manifest, drawn))
    return path
