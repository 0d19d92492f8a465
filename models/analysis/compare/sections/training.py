"""Training curves: each model's history (the JSON beside its weights), summarised and drawn;
with a study (``--study``) the same numbers over its seeds and a band over seeds in the figure.

Every accuracy carries its interval: a history's validation accuracy is a share of the run's
validation images (the count follows from the history's recipe: the images it trained on, times
``val_fraction``), so it gets the exact binomial 95 % interval of a single run; over seeds, the
mean +- the half-width of the 95 % t interval.
"""
from models.analysis.compare.intervals import binomial_text, certainty, seeds_text
from models.analysis.compare.markdown import bullets, figure_link, pct, title_of
from models.analysis.compare.section import Section


def split_sizes(history):
    """(training images, validation images) of the run, from its recipe; None if it does not say."""
    config = (history or {}).get("config") or {}
    total = (config.get("data") or {}).get("train_images")
    if not total or config.get("val_fraction") is None:
        return None
    if config.get("limit"):
        total = min(total, config["limit"])
    validation = int(round(total * config["val_fraction"]))   # as the trainer splits (models.training.trainer)
    return total - validation, validation


def training_summary(history):
    """Epochs, best epoch and validation accuracy, last epoch's accuracies and losses, and the
    sizes of the training and validation sets when the history's recipe gives them."""
    if not history or not history.get("epochs"):
        return None
    epochs = history["epochs"]
    sizes = split_sizes(history)
    summary = {"epochs": len(epochs), "final_train_accuracy": float(epochs[-1]["train_accuracy"]),
               "final_train_loss": float(epochs[-1]["train_loss"]),
               "train_images": sizes[0] if sizes else None, "val_images": sizes[1] if sizes else None}
    if any(e["val_accuracy"] is None or e["val_loss"] is None for e in epochs):
        # trained without validation (--val-fraction 0): no validation numbers to report
        return {**summary, "best_epoch": int(history.get("best_epoch") or epochs[-1]["epoch"]),
                "best_val_accuracy": None, "final_val_accuracy": None, "final_val_loss": None}
    best = max(epochs, key=lambda e: e["val_accuracy"])
    return {**summary, "best_epoch": int(history.get("best_epoch") or best["epoch"]),
            "best_val_accuracy": float(history.get("best_val_accuracy") or best["val_accuracy"]),
            "final_val_accuracy": float(epochs[-1]["val_accuracy"]),
            "final_val_loss": float(epochs[-1]["val_loss"])}


def seeds_summary(runs):
    """Over a study's seeds ({seed: list of epoch records}): per seed the epochs, the best
    validation accuracy and its epoch, the last epoch's training and validation accuracy (None
    for a run without validation)."""
    found = {"seeds": [], "epochs": [], "best_epoch": [], "best_val_accuracy": [], "final_train_accuracy": [],
             "final_val_accuracy": []}
    for seed, epochs in runs.items():
        if not epochs:
            continue
        validated = all(e.get("val_accuracy") is not None for e in epochs)
        best = max(epochs, key=lambda e: e["val_accuracy"]) if validated else epochs[-1]
        for key, value in (("seeds", seed), ("epochs", len(epochs)), ("best_epoch", int(best["epoch"])),
                           ("best_val_accuracy", best["val_accuracy"] if validated else None),
                           ("final_train_accuracy", float(epochs[-1]["train_accuracy"])),
                           ("final_val_accuracy", epochs[-1]["val_accuracy"] if validated else None)):
            found[key].append(value)
    return found if found["seeds"] else None


def _seeds(values):
    return seeds_text(values, 2).split(": ", 1)[1]


def _span(values, unit, before=False):
    """'12 epochs', '9-12 epochs', 'epoch 12', 'epochs 9-12'."""
    low, high = min(values), max(values)
    number = f"{low}" if low == high else f"{low}-{high}"
    plural = unit + ("s" if low != high or (not before and high != 1) else "")
    return f"{plural} {number}" if before else f"{number} {plural}"


def _with_interval(value, images):
    return binomial_text(value, images, 2) if images else pct(value, 2)


def describe_training(training, seeds=None):
    """One sentence per model; ``seeds`` ({name: :func:`seeds_summary`}) adds the study's numbers.
    An accuracy is followed by its single-run 95 % interval when the history gives its set's size."""
    text = []
    seeds = seeds or {}
    for name, t in training.items():
        if not t:
            text.append(f"No training history was found for the {title_of(name)}.")
        elif t["final_val_accuracy"] is None:
            text.append(f"The {title_of(name)} was trained {t['epochs']} epochs without a validation set; in "
                        f"its last epoch training accuracy was "
                        f"{_with_interval(t['final_train_accuracy'], t['train_images'])}.")
        else:
            gap = t["final_train_accuracy"] - t["final_val_accuracy"]
            val = t["val_images"]
            text.append(
                f"The {title_of(name)} reached its best validation accuracy, "
                f"{_with_interval(t['best_val_accuracy'], val)}, at epoch {t['best_epoch']} of {t['epochs']}; "
                f"in its last epoch training accuracy was {_with_interval(t['final_train_accuracy'], t['train_images'])} "
                f"and validation {_with_interval(t['final_val_accuracy'], val)} "
                f"({'a gap of ' + format(100 * abs(gap), '.2f') + ' points' if abs(gap) >= 0.0005 else 'no gap'}"
                f"{', validation above training' if gap < -0.0005 else ''})"
                + (f"; in brackets the single-run 95 % intervals over its {t['train_images']:,} training and "
                   f"{val:,} validation images" if val else "") + ".")
        s = seeds.get(name)
        if s and s["best_val_accuracy"] and None not in s["best_val_accuracy"]:
            text.append(
                f"Over the study's {len(s['seeds'])} seeds of the {title_of(name)} ({_span(s['epochs'], 'epoch')} "
                f"each; mean ± the half-width of the 95 % t interval): best validation accuracy "
                f"{_seeds(s['best_val_accuracy'])} (at {_span(s['best_epoch'], 'epoch', before=True)}), last epoch's "
                f"training accuracy {_seeds(s['final_train_accuracy'])} and validation {_seeds(s['final_val_accuracy'])}.")
    return text


def study_runs(context):
    """{name: {seed: list of epoch records}} of the study's runs of the compared models, or {}."""
    study = certainty(context).study
    if study is None:
        return {}
    return {name: {seed: result["history"] for seed, result in study.runs[name].items()}
            for name in context.names if study.has(name)}


class TrainingSection(Section):
    key = "training"
    title = "Training curves"

    def compute(self, context):
        result = {name: training_summary(context.histories[name]) for name in context.names}
        runs = study_runs(context)
        if runs:
            result["over_seeds"] = {name: seeds_summary(seed_runs) for name, seed_runs in runs.items()}
        return result

    def figures(self, context, result, folder):
        from models.analysis import plots
        present = {title_of(name): history for name, history in context.histories.items()
                   if history and history.get("epochs")}
        bands = {title_of(name): list(seed_runs.values()) for name, seed_runs in study_runs(context).items()}
        for title in bands:
            present.setdefault(title, {"epochs": []})   # a model with seeds but no history: its band alone
        if not present:
            return {}
        plots.plot_training_curves(present, folder / "training_curves.png", bands=bands)
        return {"training_curves": "training_curves.png"}

    def markdown(self, context, result, figures):
        summaries = {name: result[name] for name in context.names}
        lines = [figure_link(figures, "training_curves", "training curves of every model")]
        if "over_seeds" in result:
            lines += ["The shaded bands are the study's runs: each model's validation loss and accuracy "
                      "per epoch from the lowest to the highest seed (its recipe may be shorter than the "
                      "weights' own).", ""]
        return lines + bullets(describe_training(summaries, result.get("over_seeds")))

    def json(self, context, result):
        return {"training": result}
