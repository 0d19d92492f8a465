"""Per class: every model's F1 per digit side by side (precision and recall in the figure)."""
from models.analysis.compare.markdown import bullets, figure_link, join_words, pct, table, title_of
from models.analysis.compare.section import Section


def describe_per_class(evaluations):
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
        text.append(f"The {title_of(a)}'s F1 is higher for {a_higher} of the {len(gaps)} digits and the "
                    f"{title_of(b)}'s for {b_higher}; the largest difference is for digit {digit} "
                    f"({100 * abs(gap):.2f} points in favour of the {title_of(a if gap > 0 else b)}).")
    else:
        best = {name: 0 for name in names}
        spreads = []
        for k in digits:
            f1 = {name: rows[name][k]["f1"] for name in names}
            top = max(f1.values())
            winners = [name for name in names if f1[name] == top]
            if len(winners) == 1:
                best[winners[0]] += 1
            low = min(names, key=lambda name: f1[name])
            high = max(names, key=lambda name: f1[name])
            spreads.append((f1[high] - f1[low], k, high, low))
        ranked = sorted((name for name in names if best[name]), key=lambda name: -best[name])
        counted = sum(best.values())
        ties = f"{len(digits) - counted} tie{'s' if len(digits) - counted != 1 else ''}"
        if ranked:
            text.append("The highest F1 per digit belongs to " + join_words(
                f"the {title_of(name)} for {best[name]} digit{'s' if best[name] != 1 else ''}"
                for name in ranked) + (f" ({ties})" if counted < len(digits) else "") + ".")
        else:
            text.append(f"No model has the highest F1 alone for any digit ({ties}).")
        spread, digit, high, low = max(spreads, key=lambda s: (s[0], -s[1]))
        text.append(f"The models differ most on digit {digit}: F1 {pct(rows[high][digit]['f1'], 2)} for the "
                    f"{title_of(high)} against {pct(rows[low][digit]['f1'], 2)} for the {title_of(low)} "
                    f"({100 * spread:.2f} points).")
    return text


class PerClassSection(Section):
    key = "per_class"
    title = "Per class"

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
        return lines + bullets(describe_per_class(e))
