"""How sure are we?  Intervals and significance for the comparison's accuracies.

Always, from this run alone (labelled single-run): each model's test accuracy with its exact
binomial 95 % interval over the test images, and McNemar's exact test between each pair of models
on the same images, Holm-corrected across the pairs.  That measures the luck of the test images,
not of the training seed.  With ``--study DIR`` (a study of :mod:`models.analysis.studies`) the
section adds the accuracy over seeds (mean, sd, 95 % t interval), and for each pair of models
whether their difference is "significant at 5 %" or "not distinguishable" (a paired t-test over
seeds, Holm-corrected), with the study's figures: the validation curves with a band over seeds,
and the accuracies with their intervals.
"""
from models.analysis.compare.intervals import certainty
from models.analysis.compare.markdown import bullets, figure_link, pct, table, title_of
from models.analysis.compare.section import Section
from models.analysis.studies.analysis import sentence


def single_run(context):
    """Per model the binomial interval, per pair McNemar's exact test (Holm across pairs)."""
    sure = certainty(context)
    return {"accuracy": sure.accuracy, "pairs": sure.mcnemar_pairs()}


def single_run_sentence(pair, images):
    a, b = title_of(pair["a"]), title_of(pair["b"])
    difference = 100 * pair["difference"]
    lead = (f"the {a} and the {b} are equally accurate" if difference == 0 else
            f"the {a if difference > 0 else b} is ahead of the {b if difference > 0 else a} by "
            f"{abs(difference):.2f} points")
    verdict = "significant at 5 %" if pair["significant"] else "not distinguishable at 5 %"
    return (f"Single run, {images:,} test images: {lead} ({pair['only_a']} images only the {a} reads "
            f"right, {pair['only_b']} only the {b}): {verdict} (McNemar's exact test, Holm-adjusted "
            f"p = {pair['p_holm']:.3g}).")


class CertaintySection(Section):
    key = "certainty"
    title = "How sure are we?"

    def compute(self, context):
        result = {"single_run": single_run(context), "study": None}
        study = certainty(context).study
        if study is not None:
            result["study"] = study.analysis
            result["study_folder"] = study.folder
            result["study_results"] = study.results   # for the figures; not in report.json
        return result

    def figures(self, context, result, folder):
        if result["study"] is None:
            return {}
        from models.analysis.studies.report import plot_accuracy, plot_curves
        plot_curves(result["study_results"], folder / "certainty_curves.png")
        plot_accuracy(result["study"]["groups"], folder / "certainty_accuracy.png")
        return {"certainty_curves": "certainty_curves.png", "certainty_accuracy": "certainty_accuracy.png"}

    def markdown(self, context, result, figures):
        single = result["single_run"]
        images = next(iter(single["accuracy"].values()))["images"]
        lines = [f"**Single run** (the weights compared above, one training run each): test accuracy "
                 f"with its exact binomial 95 % interval over the {images:,} test images - how much "
                 "the test images' luck moves it, not the training seed's.", "",
                 table(["model", "test accuracy", "95 % interval (single run)"],
                       [[title_of(name), pct(a["accuracy"], 2), f"{pct(a['low'], 2)} - {pct(a['high'], 2)}"]
                        for name, a in single["accuracy"].items()]), ""]
        lines += bullets(single_run_sentence(pair, images) for pair in single["pairs"])
        study = result["study"]
        if study is None:
            lines.append("No study was given (`--study DIR`, from `python -m models.study run`): the "
                         "spread over training seeds is not measured here.")
            return lines
        lines += [f"**Over seeds** (the study in `{result['study_folder']}`): mean, standard deviation "
                  "and 95 % t interval of the test accuracy; each pair of models by a paired t-test "
                  "over seeds, Holm-corrected across the pairs of a setting.", "",
                  table(["model", "setting", "seeds", "mean", "sd", "95 % interval (over seeds)"],
                        [[group["title"], group["setting"], group["n"], pct(group["accuracy_mean"], 2),
                          "-" if group["accuracy_sd"] is None else f"{100 * group['accuracy_sd']:.3f}",
                          "-" if group["accuracy_low"] is None else
                          f"{pct(group['accuracy_low'], 2)} - {pct(group['accuracy_high'], 2)}"]
                         for group in study["groups"]]), ""]
        lines += bullets(sentence(pair) for pair in study["pairs"])
        lines.append(figure_link(figures, "certainty_curves", "validation accuracy, band over seeds"))
        lines.append(figure_link(figures, "certainty_accuracy", "test accuracy with 95 % intervals over seeds"))
        return lines

    def json(self, context, result):
        return {"certainty": {key: value for key, value in result.items() if key != "study_results"}}
