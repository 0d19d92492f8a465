"""Training curves: each model's history (the JSON beside its weights), summarised and drawn."""
from models.analysis.compare.markdown import bullets, figure_link, pct, title_of
from models.analysis.compare.section import Section


def training_summary(history):
    """Epochs, best epoch and validation accuracy, last epoch's accuracies and losses."""
    if not history or not history.get("epochs"):
        return None
    epochs = history["epochs"]
    summary = {"epochs": len(epochs), "final_train_accuracy": float(epochs[-1]["train_accuracy"]),
               "final_train_loss": float(epochs[-1]["train_loss"])}
    if any(e["val_accuracy"] is None or e["val_loss"] is None for e in epochs):
        # trained without validation (--val-fraction 0): no validation numbers to report
        return {**summary, "best_epoch": int(history.get("best_epoch") or epochs[-1]["epoch"]),
                "best_val_accuracy": None, "final_val_accuracy": None, "final_val_loss": None}
    best = max(epochs, key=lambda e: e["val_accuracy"])
    return {**summary, "best_epoch": int(history.get("best_epoch") or best["epoch"]),
            "best_val_accuracy": float(history.get("best_val_accuracy") or best["val_accuracy"]),
            "final_val_accuracy": float(epochs[-1]["val_accuracy"]),
            "final_val_loss": float(epochs[-1]["val_loss"])}


def describe_training(training):
    text = []
    for name, t in training.items():
        if not t:
            text.append(f"No training history was found for the {title_of(name)}.")
            continue
        if t["final_val_accuracy"] is None:
            text.append(f"The {title_of(name)} was trained {t['epochs']} epochs without a validation set; in "
                        f"its last epoch training accuracy was {pct(t['final_train_accuracy'], 2)}.")
            continue
        gap = t["final_train_accuracy"] - t["final_val_accuracy"]
        text.append(f"The {title_of(name)} reached its best validation accuracy, {pct(t['best_val_accuracy'], 2)}, "
                    f"at epoch {t['best_epoch']} of {t['epochs']}; in its last epoch training accuracy "
                    f"was {pct(t['final_train_accuracy'], 2)} and validation {pct(t['final_val_accuracy'], 2)} "
                    f"({'a gap of ' + format(100 * abs(gap), '.2f') + ' points' if abs(gap) >= 0.0005 else 'no gap'}"
                    f"{', validation above training' if gap < -0.0005 else ''}).")
    return text


class TrainingSection(Section):
    key = "training"
    title = "Training curves"

    def compute(self, context):
        return {name: training_summary(context.histories[name]) for name in context.names}

    def figures(self, context, result, folder):
        from models.analysis import plots
        present = {title_of(name): history for name, history in context.histories.items()
                   if history and history.get("epochs")}
        if not present:
            return {}
        plots.plot_training_curves(present, folder / "training_curves.png")
        return {"training_curves": "training_curves.png"}

    def markdown(self, context, result, figures):
        return ([figure_link(figures, "training_curves", "training curves of every model")]
                + bullets(describe_training(result)))

    def json(self, context, result):
        return {"training": result}
