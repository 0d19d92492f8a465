"""A study's numbers: per model and setting the accuracy over seeds, per pair of models the
paired t-test over seeds and McNemar's exact test per seed, Holm-corrected across the pairs.

The family for Holm's correction is every pair of models compared under one setting: with k
models that is k (k - 1) / 2 tests, each decided at 5 % after the correction.  The decision of a
pair is the paired t-test over seeds (it sees the seed-to-seed spread); with one seed only,
McNemar's test on that seed decides, and the sentence says it is a single run.  McNemar's test is
also shown per seed: how many seeds, tested on the same test images, tell the models apart.
"""
from collections import defaultdict
from itertools import combinations

import numpy as np

from models import registry
from nn.errors import UserError

from .stats import ALPHA, holm, mcnemar_exact, paired_t, summary


def setting_label(settings):
    return " ".join(f"{key}={value}" for key, value in sorted(settings.items())) or "default"


def title_of(model):
    try:
        return registry.get(model).title
    except UserError:
        return model


def analyse(results):
    """{"groups": [...], "pairs": [...]} of the finished cells ``results`` (see :mod:`.folder`)."""
    by_group = defaultdict(dict)         # (setting, model) -> {seed: result}
    order = []
    for result in results:
        key = (setting_label(result["settings"]), result["model"])
        if key not in by_group:
            order.append(key)
        by_group[key][result["seed"]] = result
    groups = []
    for setting, model in order:
        runs = by_group[(setting, model)]
        seeds = sorted(runs)
        accuracies = [runs[seed]["test_accuracy"] for seed in seeds]
        groups.append({"model": model, "title": title_of(model), "setting": setting, "seeds": seeds,
                       "accuracies": accuracies, "test_images": runs[seeds[0]]["test_images"],
                       **{f"accuracy_{key}": value for key, value in summary(accuracies).items()
                          if key != "n"}, "n": len(seeds)})
    pairs = []
    for setting in dict.fromkeys(setting for setting, _ in order):
        models = [model for s, model in order if s == setting]
        family = [compare(setting, a, b, by_group[(setting, a)], by_group[(setting, b)])
                  for a, b in combinations(models, 2)]
        decide(family)
        pairs.extend(family)
    return {"alpha": ALPHA, "groups": groups, "pairs": pairs}


def compare(setting, model_a, model_b, runs_a, runs_b):
    """The tests of one pair of models over the seeds both have."""
    seeds = sorted(set(runs_a) & set(runs_b))
    a = [runs_a[seed]["test_accuracy"] for seed in seeds]
    b = [runs_b[seed]["test_accuracy"] for seed in seeds]
    mcnemar = []
    for seed in seeds:
        labels_a, labels_b = runs_a[seed]["labels"], runs_b[seed]["labels"]
        if labels_a.shape != labels_b.shape or not np.array_equal(labels_a, labels_b):
            raise UserError(f"{model_a} and {model_b} (seed {seed}) were tested on different images; "
                            "a study compares runs on one test set (same data, same --limit)")
        mcnemar.append({"seed": seed, **mcnemar_exact(runs_a[seed]["predictions"],
                                                      runs_b[seed]["predictions"], labels_a)})
    return {"setting": setting, "a": model_a, "b": model_b, "title_a": title_of(model_a),
            "title_b": title_of(model_b), "seeds": seeds,
            "mean_difference": float(np.mean(np.subtract(a, b))) if seeds else None,
            "paired_t": paired_t(a, b), "mcnemar": mcnemar}


def decide(family):
    """Holm-correct the family's paired t-tests (and, seed by seed, its McNemar tests) and set
    each pair's ``significant`` and ``decided_by``."""
    with_t = [pair for pair in family if pair["paired_t"] is not None]
    for pair, adjusted in zip(with_t, holm([pair["paired_t"]["p"] for pair in with_t])):
        pair["paired_t"]["p_holm"] = adjusted
    for seed in sorted({entry["seed"] for pair in family for entry in pair["mcnemar"]}):
        entries = [entry for pair in family for entry in pair["mcnemar"] if entry["seed"] == seed]
        for entry, adjusted in zip(entries, holm([entry["p"] for entry in entries])):
            entry["p_holm"] = adjusted
    for pair in family:
        pair["mcnemar_significant_seeds"] = sum(entry["p_holm"] <= ALPHA for entry in pair["mcnemar"])
        if pair["paired_t"] is not None:
            pair["decided_by"] = "paired t-test over seeds"
            pair["p_holm"] = pair["paired_t"]["p_holm"]
        elif pair["mcnemar"]:
            pair["decided_by"] = "McNemar's exact test (a single run per model)"
            pair["p_holm"] = pair["mcnemar"][0]["p_holm"]
        else:
            pair["decided_by"], pair["p_holm"] = "nothing (no seed in common)", None
        pair["significant"] = pair["p_holm"] is not None and pair["p_holm"] <= ALPHA


def sentence(pair):
    """The generated sentence of one compared pair: which is ahead, and whether that is
    "significant at 5 %" or "not distinguishable"."""
    a, b, seeds = pair["title_a"], pair["title_b"], pair["seeds"]
    if not seeds:
        return f"{a} and {b} share no seed, so they are not compared."
    difference = 100 * pair["mean_difference"]
    runs = f"over {len(seeds)} seeds" if len(seeds) > 1 else "in a single run each"
    if difference == 0:
        lead = f"{a} and {b} have the same mean test accuracy {runs}"
    else:
        ahead, behind = (a, b) if difference > 0 else (b, a)
        lead = f"{ahead} is ahead of {behind} by {abs(difference):.2f} points {runs}"
    verdict = "significant at 5 %" if pair["significant"] else "not distinguishable at 5 %"
    mcnemar = ""
    if len(pair["mcnemar"]) > 1:
        mcnemar = (f"; McNemar's exact test on the shared test images tells them apart in "
                   f"{pair['mcnemar_significant_seeds']} of {len(pair['mcnemar'])} seeds")
    return (f"{lead}: {verdict} ({pair['decided_by']}, Holm-adjusted p = {pair['p_holm']:.3g}"
            f"{mcnemar}).")
