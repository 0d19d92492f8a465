"""Robustness: every model's accuracy as the digits are shifted, rotated, scaled, blurred, noised
or have rows blanked (the sweeps of :mod:`models.analysis.compare.sweeps`), with one figure, one
table and a few generated sentences per perturbation.
"""
import numpy as np

from models.analysis.compare.markdown import all_models, bullets, figure_link, join_words, number, pct, table, \
    title_of
from models.analysis.compare.section import Section
from models.analysis.compare.sweeps import SWEEPS, run_sweeps


def _at_level(names, base, values):
    """'the CNN keeps 99.2 % while the LSTM drops to 61.3 % (-37.2 points)': a model "keeps" its
    accuracy if it lost less than 1 point, the same bar as the 'at most 1 point' sentences."""
    drops = {name: base[name] - values[name] for name in names}
    if all(drop < 0.01 for drop in drops.values()):
        return f"{all_models(names)} stay within 1 point: " + ", ".join(
            f"the {title_of(name)} scores {pct(values[name])}" for name in names)
    parts = [f"the {title_of(name)} keeps {pct(values[name])}" if drops[name] < 0.01 else
             f"the {title_of(name)} drops to {pct(values[name])} (-{100 * drops[name]:.1f} points)"
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


def describe_sweep(sweep, result, names=None):
    """What a sweep's numbers show: a list of paragraphs (each a few generated sentences)."""
    levels = result["levels"]
    at = {level: i for i, level in enumerate(levels)}
    base_index = at[sweep.identity]
    sentences = []
    for variant, data in result["variants"].items():
        acc = data["accuracy"]
        names = list(acc) if names is None else names
        where = f" (rows blanked at the {variant})" if variant else ""
        base = {name: acc[name][base_index] for name in names}
        if not variant or variant == next(iter(result["variants"])):
            sentences.append(["Unperturbed, the subset is classified with " + join_words(
                f"{pct(base[name])} ({title_of(name)})" for name in names) + " accuracy."])
        for arm in _arms(levels, sweep.identity):
            sentences.append([])
            extreme = arm[-1]
            values = {name: acc[name][at[extreme]] for name in names}
            at_where = f" at the {variant}" if variant else ""
            sentences[-1].append(f"At {sweep.phrase(extreme)}{at_where} {_at_level(names, base, values)}.")
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
            sentences.append([
                f"Over the {len(others)} perturbed levels{where} {who}; averaged over those levels "
                f"the {title_of(a)} scores {pct(mean[a])} and the {title_of(b)} {pct(mean[b])}."])
        elif len(names) > 2:
            order = sorted(names, key=lambda name: -mean[name])
            sentences.append([
                f"Averaged over the {len(others)} perturbed levels{where}: " + ", ".join(
                    f"{title_of(name)} {pct(mean[name])}" for name in order)
                + f"; the {title_of(order[0])} holds up best and the {title_of(order[-1])} worst."])
    return [" ".join(paragraph) for paragraph in sentences]


class RobustnessSection(Section):
    key = "robustness"
    title = "Robustness"

    def __init__(self, sweeps=SWEEPS):
        self.sweeps = sweeps

    def compute(self, context):
        subset = context.subset
        context.log(f"robustness sweeps on {len(subset):,} images")
        return run_sweeps(context.models, context.images[subset], context.labels[subset], sweeps=self.sweeps,
                          seed=context.seed, log=context.log)

    def figures(self, context, result, folder):
        from models.analysis import plots
        color = {name: plots.model_color(i) for i, name in enumerate(context.names)}
        figures = {}
        for sweep in self.sweeps:
            series, examples = [], []
            for variant, data in result[sweep.key]["variants"].items():
                for name in context.names:
                    series.append({"label": title_of(name) + (f", {variant} rows" if variant else ""),
                                   "accuracy": data["accuracy"][name], "color": color[name],
                                   "linestyle": sweep.styles.get(variant, "-")})
                examples.append((f"{variant} rows" if variant else "example", data["example"]))
            file = f"robustness_{sweep.key}.png"
            plots.plot_sweep(folder / file, f"{sweep.title}: accuracy on the robustness subset", sweep.xlabel,
                             result[sweep.key]["levels"], series, examples, level_format=number)
            figures[sweep.key] = file
        return figures

    def markdown(self, context, result, figures):
        names = context.names
        lines = [f"Accuracy as the test digits are perturbed, on a fixed random subset of "
                 f"{len(context.subset):,} of the {len(context.images):,} test images (seed {context.seed}), "
                 f"so the unperturbed accuracies below are those of the subset. The row of digits under "
                 f"each curve shows the same test image at each level.", ""]
        for sweep in self.sweeps:
            sweep_result = result[sweep.key]
            lines += [f"### {sweep.title}", "", f"What changes: {sweep.what}.", "",
                      figure_link(figures, sweep.key, f"accuracy under {sweep.title.lower()}")]
            header = [sweep.xlabel]
            for variant in sweep_result["variants"]:
                header += [f"{title_of(m)}{' ' + variant if variant else ''}" for m in names]
            rows = []
            for i, level in enumerate(sweep_result["levels"]):
                row = [number(level)]
                for data in sweep_result["variants"].values():
                    row += [pct(data["accuracy"][m][i]) for m in names]
                rows.append(row)
            lines += [table(header, rows), ""]
            lines += bullets(describe_sweep(sweep, sweep_result, names))
        return lines

    def json(self, context, result):
        """Every accuracy; the example digits stay out (they are in the figures)."""
        return {"sweep_images": len(context.subset),
                "robustness": {key: {"levels": r["levels"],
                                     "variants": {v: {"accuracy": d["accuracy"]} for v, d in r["variants"].items()}}
                               for key, r in result.items()}}
