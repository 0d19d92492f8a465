"""Per class: every model's F1 per digit side by side (precision and recall in the figure).

A sentence that compares two models' F1 on a digit says whether the difference is significant:
over the study's seeds (a paired t-test of the per-seed F1, from each run's test predictions)
when ``--study`` has both models, else on this single run (a paired permutation test over the
test images: each image's two answers may be swapped between the models), Holm-corrected across
the digits when a sentence rests on all of them.
"""
from models.analysis import metrics
from models.analysis.compare.intervals import certainty, compare, decide, verdict
from models.analysis.compare.markdown import bullets, figure_link, join_words, pct, table, title_of
from models.analysis.compare.section import Section
from models.analysis.studies.stats import f1_statistic, f1_values


class DigitTests:
    """The test of "A's F1 on digit k differs from B's", made once per (a, b, k) (not decided:
    the sentence that uses it Holm-adjusts its family)."""

    def __init__(self, context):
        self.evaluations = context.evaluations
        self.study = certainty(context).study
        self.seed = context.seed
        self.made = {}
        self._seed_f1 = {}

    def seed_f1(self, name):
        """{seed: [F1 of each digit]} of the study's runs of ``name`` (its own test predictions)."""
        if name not in self._seed_f1:
            runs = self.study.runs.get(name, {}) if self.study is not None else {}
            classes = self.evaluations[name].confusion.shape[0]
            self._seed_f1[name] = {
                seed: [row["f1"] for row in metrics.per_class_report(
                    metrics.confusion_matrix(result["labels"], result["predictions"], classes))]
                for seed, result in runs.items()}
        return self._seed_f1[name]

    def __call__(self, a, b, digit):
        key = (a, b, digit)
        if key not in self.made:
            ea, eb = self.evaluations[a], self.evaluations[b]
            seeds = None
            if self.study is not None:
                seeds = ({s: f1[digit] for s, f1 in self.seed_f1(a).items()},
                         {s: f1[digit] for s, f1 in self.seed_f1(b).items()})
            statistic = f1_statistic(ea.labels, digit)
            test = compare(seeds, (f1_values(ea.predictions, ea.labels, digit),
                                   f1_values(eb.predictions, eb.labels, digit), statistic))
            self.made[key] = {"a": a, "b": b, "digit": digit, **test}
        return dict(self.made[key])


def describe_per_class(evaluations, tests=None):
    """Sentences on the F1 per digit; ``tests`` (a :class:`DigitTests`) adds the verdicts."""
    rows = {name: e.per_class for name, e in evaluations.items()}
    names = list(rows)
    text = []
    for name in names:
        weakest = min(rows[name], key=lambda r: (r["f1"], r["digit"]))
        text.append(f"The {title_of(name)}'s weakest digit is {weakest['digit']} "
                    f"(F1 {pct(weakest['f1'], 2)}).")
    digits = range(len(rows[names[0]]))
    if len(names) == 2:
        a, b = names
        gaps = [(rows[a][k]["f1"] - rows[b][k]["f1"], k) for k in digits]
        a_higher = sum(g > 0 for g, _ in gaps)
        b_higher = sum(g < 0 for g, _ in gaps)
        gap, digit = max(gaps, key=lambda g: (abs(g[0]), -g[1]))
        sentence = (f"The {title_of(a)}'s F1 is higher for {a_higher} of the {len(gaps)} digits and the "
                    f"{title_of(b)}'s for {b_higher}; the largest difference is for digit {digit} "
                    f"({100 * abs(gap):.2f} points in favour of the {title_of(a if gap > 0 else b)})")
        if tests is not None:
            family = decide([tests(a, b, k) for k in digits])
            significant = [test["digit"] for test in family if test["significant"]]
            sentence += (f": {verdict(family[digit])}. Digit by digit, the difference is significant at 5 % for "
                         + (f"{len(significant)} of the {len(gaps)} digits ({', '.join(map(str, significant))})"
                            if significant else f"none of the {len(gaps)} digits")
                         + (" and not distinguishable for the others" if len(significant) < len(gaps) else ""))
        text.append(sentence + ".")
    else:
        best = {name: 0 for name in names}
        spreads, leads = [], []
        for k in digits:
            f1 = {name: rows[name][k]["f1"] for name in names}
            ranked_here = sorted(names, key=lambda name: -f1[name])
            top = f1[ranked_here[0]]
            winners = [name for name in names if f1[name] == top]
            if len(winners) == 1:
                best[winners[0]] += 1
                leads.append((ranked_here[0], ranked_here[1], k))
            low = min(names, key=lambda name: f1[name])
            high = max(names, key=lambda name: f1[name])
            spreads.append((f1[high] - f1[low], k, high, low))
        ranked = sorted((name for name in names if best[name]), key=lambda name: -best[name])
        counted = sum(best.values())
        ties = f"{len(digits) - counted} tie{'s' if len(digits) - counted != 1 else ''}"
        if ranked:
            sentence = ("The highest F1 per digit belongs to " + join_words(
                f"the {title_of(name)} for {best[name]} digit{'s' if best[name] != 1 else ''}"
                for name in ranked) + (f" ({ties})" if counted < len(digits) else ""))
            if tests is not None and leads:
                family = decide([tests(top, second, k) for top, second, k in leads])
                ahead = [test for test in family if test["significant"]]
                how = family[0]["test"] + (", single run" if family[0]["scope"] == "single run" else "")
                if ahead:
                    sentence += (f"; the top model is significantly ahead of the runner-up (5 %, Holm across the "
                                 f"{len(family)} digits, {how}) for " + join_words(
                                     f"digit {t['digit']} ({title_of(t['a'])} over {title_of(t['b'])})" for t in ahead)
                                 + (f", not distinguishable for the other {len(family) - len(ahead)}"
                                    if len(ahead) < len(family) else ""))
                else:
                    sentence += (f"; the top model and the runner-up are not distinguishable at 5 % for any of "
                                 f"those {len(family)} digits (Holm across them, {how})")
            text.append(sentence + ".")
        else:
            text.append(f"No model has the highest F1 alone for any digit ({ties}).")
        spread, digit, high, low = max(spreads, key=lambda s: (s[0], -s[1]))
        sentence = (f"The models differ most on digit {digit}: F1 {pct(rows[high][digit]['f1'], 2)} for the "
                    f"{title_of(high)} against {pct(rows[low][digit]['f1'], 2)} for the {title_of(low)} "
                    f"({100 * spread:.2f} points)")
        if tests is not None and high != low:
            sentence += f": {verdict(decide([tests(high, low, digit)])[0])}"
        text.append(sentence + ".")
    return text


class PerClassSection(Section):
    key = "per_class"
    title = "Per class"

    def compute(self, context):
        tests = DigitTests(context)
        sentences = describe_per_class(context.evaluations, tests)
        return {"sentences": sentences, "tests": list(tests.made.values())}

    def figures(self, context, result, folder):
        from models.analysis import plots
        plots.plot_per_class({title_of(name): evaluation.per_class
                              for name, evaluation in context.evaluations.items()}, folder / "per_class.png")
        return {"per_class": "per_class.png"}

    def markdown(self, context, result, figures):
        e, names = context.evaluations, context.names
        lines = ["F1 per digit: the harmonic mean of precision (of the images a model "
                 "called *k*, the share that are *k*) and recall (of the images of *k*, the share it called "
                 "*k*). The figure shows all three; `report.json` has every number.", ""]
        first = e[names[0]]
        rows = [[k] + [pct(e[m].per_class[k]["f1"], 2) for m in names] + [f"{first.per_class[k]['support']:,}"]
                for k in range(len(first.per_class))]
        rows.append(["macro"] + [pct(e[m].macro["f1"], 2) for m in names] + [f"{first.macro['support']:,}"])
        lines += [table(["digit"] + [f"{title_of(m)} F1" for m in names] + ["support"], rows), "",
                  figure_link(figures, "per_class", "per-class precision, recall and F1")]
        return lines + bullets(result["sentences"])

    def json(self, context, result):
        return {"per_class_tests": result["tests"]}
