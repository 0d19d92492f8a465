"""Robustness: every model's accuracy as the digits are shifted, rotated, scaled, blurred, noised
or have rows blanked (the sweeps of :mod:`models.analysis.compare.sweeps`), with one figure, one
table and a few generated sentences per perturbation.

Every accuracy carries its interval: the single-run exact binomial interval over the subset's
images or, with ``--study``, the mean over the study's seeds (the same sweeps run on each seed's
weights) +- the half-width of its 95 % t interval.  A sentence that compares models says whether
the difference of their accuracies averaged over the perturbed levels is significant.
"""
import numpy as np

from models.analysis.compare.intervals import (accuracy_cell, binomial_text, certainty, compare, decide, legend,
                                               seeds_text, verdict)
from models.analysis.compare.markdown import all_models, bullets, figure_link, join_words, number, pct, table, \
    title_of
from models.analysis.compare.section import Section
from models.analysis.compare.sweeps import SWEEPS, run_sweeps


def _at_level(names, base, values, shown=None):
    """'the CNN keeps 99.2 % while the LSTM drops to 61.3 % (-37.2 points)': a model "keeps" its
    accuracy if it lost less than 1 point, the same bar as the 'at most 1 point' sentences.
    ``shown`` ({name: words}) writes the values with their intervals."""
    shown = shown or {name: pct(values[name]) for name in names}
    drops = {name: base[name] - values[name] for name in names}
    if all(drop < 0.01 for drop in drops.values()):
        return f"{all_models(names)} stay within 1 point: " + ", ".join(
            f"the {title_of(name)} scores {shown[name]}" for name in names)
    parts = [f"the {title_of(name)} keeps {shown[name]}" if drops[name] < 0.01 else
             f"the {title_of(name)} drops to {shown[name]} (-{100 * drops[name]:.1f} points)"
             for name in names]
    if len(names) == 2:
        kept = sum(drops[name] < 0.01 for name in names)
        return (" while " if kept == 1 else " and ").join(parts)
    return join_words(parts)


def _arms(levels, identity):
    """Levels from the identity outwards, one list per direction (e.g. left and right)."""
    up = sorted(level for level in levels if level > identity)
    down = sorted((level for level in levels if level < identity), reverse=True)
    return [arm for arm in (up, down) if arm]


def _reach_words(sweep, arm, level, subject):
    """'the CNN loses at most 1 point up to a 2 px shift right' and its variants."""
    if level is None:
        return f"{subject} more than 1 point already at {sweep.phrase(arm[0])}"
    if level == arm[-1]:
        return f"{subject} at most 1 point all the way to {sweep.phrase(level)}"
    return f"{subject} at most 1 point up to {sweep.phrase(level)}"


def describe_sweep(sweep, result, names=None, sure=None):
    """What a sweep's numbers show: a list of paragraphs (each a few generated sentences).

    ``sure`` (a :class:`SweepCertainty`) writes every accuracy with its interval and adds to each
    comparison of models whether it is significant."""
    levels = result["levels"]
    at = {level: i for i, level in enumerate(levels)}
    base_index = at[sweep.identity]
    sentences = []
    for variant, data in result["variants"].items():
        acc = data["accuracy"]
        names = list(acc) if names is None else names
        where = f" (rows blanked at the {variant})" if variant else ""
        base = {name: acc[name][base_index] for name in names}
        say = ((lambda name, index: sure.words(variant, name, index)) if sure else
               (lambda name, index: pct(acc[name][index])))
        if not variant or variant == next(iter(result["variants"])):
            sentences.append(["Unperturbed, the subset is classified with " + join_words(
                f"{say(name, base_index)} ({title_of(name)})" for name in names) + " accuracy."])
        for arm in _arms(levels, sweep.identity):
            sentences.append([])
            extreme = arm[-1]
            values = {name: acc[name][at[extreme]] for name in names}
            at_where = f" at the {variant}" if variant else ""
            shown = {name: say(name, at[extreme]) for name in names}
            sentences[-1].append(f"At {sweep.phrase(extreme)}{at_where} {_at_level(names, base, values, shown)}.")
            # How far each model goes before losing more than one point.
            reach = {}
            for name in names:
                reach[name] = None
                for level in arm:
                    if acc[name][at[level]] < base[name] - 0.01:
                        break
                    reach[name] = level
            if len(set(reach.values())) == 1:
                sentence = _reach_words(sweep, arm, reach[names[0]], f"{all_models(names)} lose") + "."
            else:
                groups = {}   # models with the same reach share one clause, in order of first mention
                for name in names:
                    groups.setdefault(reach[name], []).append(name)
                sentence = "; ".join(
                    _reach_words(sweep, arm, level, join_words(f"the {title_of(name)}" for name in group)
                                 + (" loses" if len(group) == 1 else " lose"))
                    for level, group in groups.items()) + "."
            if variant:
                sentence = f"with the {variant} rows blanked, {sentence}"
            sentences[-1].append(sentence[0].upper() + sentence[1:])
        # Which model loses more, level by level.
        others = [i for i in range(len(levels)) if i != base_index]
        if not others:
            continue
        mean = {name: float(np.mean([acc[name][i] for i in others])) for name in names}
        if len(names) == 2:
            a, b = names
            drop = {name: [base[name] - acc[name][i] for i in others] for name in names}
            a_more = sum(da > db for da, db in zip(drop[a], drop[b]))
            b_more = sum(db > da for da, db in zip(drop[a], drop[b]))
            if a_more == b_more:
                who = (f"the {title_of(a)} and the {title_of(b)} each lose more accuracy at "
                       f"{a_more} of them")
            else:
                worse, better = (a, b) if a_more > b_more else (b, a)
                who = (f"the {title_of(worse)} loses more accuracy than the {title_of(better)} at "
                       f"{max(a_more, b_more)} of them")
            tested = ""
            if sure:
                tested = f"; the difference of the averages is {verdict(decide([sure.test(variant, a, b, others)])[0])}"
            sentences.append([
                f"Over the {len(others)} perturbed levels{where} {who}; averaged over those levels "
                f"the {title_of(a)} scores {pct(mean[a])} and the {title_of(b)} {pct(mean[b])}{tested}."])
        elif len(names) > 2:
            order = sorted(names, key=lambda name: -mean[name])
            tested = ""
            if sure:
                best, worst = decide([sure.test(variant, order[0], order[1], others),
                                      sure.test(variant, order[-2], order[-1], others)])
                tested = (f"; the {title_of(order[0])} against the runner-up {title_of(order[1])}: {verdict(best)}; "
                          f"the {title_of(order[-1])} against the {title_of(order[-2])}: {verdict(worst)}")
            sentences.append([
                f"Averaged over the {len(others)} perturbed levels{where}: " + ", ".join(
                    f"{title_of(name)} {pct(mean[name])}" for name in order)
                + f"; the {title_of(order[0])} holds up best and the {title_of(order[-1])} worst{tested}."])
    return [" ".join(paragraph) for paragraph in sentences]


class SweepCertainty:
    """One sweep's intervals and tests: single-run from each image's right or wrong per level,
    over seeds from the study's runs measured on the same images (``seeds``: {variant: {name:
    {seed: [accuracy per level]}}}, empty without a study)."""

    def __init__(self, result, seeds, images, seed=0):
        self.result, self.seeds, self.images, self.seed = result, seeds or {}, images, seed

    def over_seeds(self, variant, name):
        return self.seeds.get(variant, {}).get(name) or {}

    def words(self, variant, name, index):
        value = self.result["variants"][variant]["accuracy"][name][index]
        runs = self.over_seeds(variant, name)
        if runs:
            return f"{pct(value)} ({seeds_text([levels[index] for levels in runs.values()])})"
        return binomial_text(value, self.images)

    def cell(self, variant, name, index):
        value = self.result["variants"][variant]["accuracy"][name][index]
        runs = self.over_seeds(variant, name)
        return accuracy_cell(value, self.images, [levels[index] for levels in runs.values()] if runs else None)

    def test(self, variant, a, b, indices):
        """A's and B's accuracy averaged over the levels ``indices``: do they differ?"""
        per_seed = [{seed: float(np.mean([levels[i] for i in indices])) for seed, levels in
                     self.over_seeds(variant, name).items()} for name in (a, b)]
        correct = self.result["variants"][variant]["correct"]
        return compare(per_seed, (correct[a][indices].mean(axis=0), correct[b][indices].mean(axis=0)))


def sweeps_over_seeds(context, sweeps):
    """{sweep key: {variant: {name: {seed: [accuracy per level]}}}} of the study's runs on the
    robustness subset, or {} without a study."""
    study = certainty(context).study
    if study is None:
        return {}
    by_seed = {}
    for name in context.names:
        for seed, model in study.models(name).items():
            by_seed.setdefault(seed, {})[name] = model
    found = {}
    subset = context.subset
    for seed, models in sorted(by_seed.items()):
        context.log(f"robustness sweeps of the study's seed {seed} ({', '.join(models)})")
        swept = run_sweeps(models, context.images[subset], context.labels[subset], sweeps=sweeps,
                           seed=context.seed)
        for key, sweep_result in swept.items():
            for variant, data in sweep_result["variants"].items():
                for name, accuracy in data["accuracy"].items():
                    found.setdefault(key, {}).setdefault(variant, {}).setdefault(name, {})[seed] = accuracy
    return found


class RobustnessSection(Section):
    key = "robustness"
    title = "Robustness"

    def __init__(self, sweeps=SWEEPS):
        self.sweeps = sweeps

    def compute(self, context):
        subset = context.subset
        context.log(f"robustness sweeps on {len(subset):,} images")
        result = run_sweeps(context.models, context.images[subset], context.labels[subset], sweeps=self.sweeps,
                            seed=context.seed, log=context.log)
        seeds = sweeps_over_seeds(context, self.sweeps)
        return {"sweeps": result, "over_seeds": seeds,
                "certainty": {key: SweepCertainty(result[key], seeds.get(key), len(subset), context.seed)
                              for key in result}}

    def figures(self, context, result, folder):
        from models.analysis import plots
        color = {name: plots.model_color(i) for i, name in enumerate(context.names)}
        figures = {}
        for sweep in self.sweeps:
            series, examples = [], []
            for variant, data in result["sweeps"][sweep.key]["variants"].items():
                for name in context.names:
                    series.append({"label": title_of(name) + (f", {variant} rows" if variant else ""),
                                   "accuracy": data["accuracy"][name], "color": color[name],
                                   "linestyle": sweep.styles.get(variant, "-")})
                examples.append((f"{variant} rows" if variant else "example", data["example"]))
            file = f"robustness_{sweep.key}.png"
            plots.plot_sweep(folder / file, f"{sweep.title}: accuracy on the robustness subset", sweep.xlabel,
                             result["sweeps"][sweep.key]["levels"], series, examples, level_format=number)
            figures[sweep.key] = file
        return figures

    def markdown(self, context, result, figures):
        names = context.names
        lines = [f"Accuracy as the test digits are perturbed, on a fixed random subset of "
                 f"{len(context.subset):,} of the {len(context.images):,} test images (seed {context.seed}), "
                 f"so the unperturbed accuracies below are those of the subset. The row of digits under "
                 f"each curve shows the same test image at each level. "
                 + legend(bool(result["over_seeds"]), len(context.subset))
                 + (" Comparisons are decided over the study's seeds (the same sweeps on the same images), "
                    "else image by image on this run (a paired permutation test of the two models' "
                    "accuracies averaged over the perturbed levels)." if result["over_seeds"] else
                    " Comparisons are decided image by image on this single run: a paired permutation "
                    "test of the two models' accuracies averaged over the perturbed levels."), ""]
        for sweep in self.sweeps:
            sweep_result = result["sweeps"][sweep.key]
            sure = result["certainty"][sweep.key]
            lines += [f"### {sweep.title}", "", f"What changes: {sweep.what}.", "",
                      figure_link(figures, sweep.key, f"accuracy under {sweep.title.lower()}")]
            header = [sweep.xlabel]
            for variant in sweep_result["variants"]:
                header += [f"{title_of(m)}{' ' + variant if variant else ''}" for m in names]
            rows = []
            for i, level in enumerate(sweep_result["levels"]):
                row = [number(level)]
                for variant in sweep_result["variants"]:
                    row += [sure.cell(variant, m, i) for m in names]
                rows.append(row)
            lines += [table(header, rows), ""]
            lines += bullets(describe_sweep(sweep, sweep_result, names, sure))
        return lines

    def json(self, context, result):
        """Every accuracy; the example digits stay out (they are in the figures)."""
        return {"sweep_images": len(context.subset),
                "robustness": {key: {"levels": r["levels"],
                                     "variants": {v: {"accuracy": d["accuracy"]} for v, d in r["variants"].items()}}
                               for key, r in result["sweeps"].items()},
                "robustness_over_seeds": result["over_seeds"]}
