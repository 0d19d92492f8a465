"""At a glance: accuracy, errors, size, FLOPs and the speeds measured in this run, side by side.

The training rate and the latency are measured here (:mod:`models.analysis.compare.timing`);
they are the only numbers of the report that change between two runs on the same weights.
"""
import os

from models.analysis.compare.intervals import certainty, seeds_cell, seeds_text, verdict
from models.analysis.compare.markdown import bullets, join_words, pct, ratio_words, seconds_words, table, title_of
from models.analysis.compare.section import Section
from models.analysis.studies.stats import ALPHA, mann_whitney
from models.analysis.compare.timing import LATENCY_WARMUP, SPEED_BATCH, SPEED_WARMUP, numba_threads, \
    single_image_latency, training_speed


def accuracy_interval(sure, name):
    """'95 % interval 99.39-99.66 %, single run' or, with a study, '99.41 ± 0.05 % over 5 seeds'."""
    if sure.seeds and sure.study.has(name):
        values = list(sure.study.test_accuracies(name).values())
        return seeds_text(values, 2)
    a = sure.accuracy[name]
    return f"single-run 95 % interval {pct(a['low'], 2)}-{pct(a['high'], 2)}"


def speed_test(speed, fast, slow):
    """The Mann-Whitney U test of two models' timed step seconds (their step rates differ?)."""
    test = mann_whitney(speed[fast]["step_seconds"], speed[slow]["step_seconds"])
    return {"test": f"Mann-Whitney U test on the {len(speed[fast]['step_seconds'])} and "
                    f"{len(speed[slow]['step_seconds'])} timed steps", "scope": "timing", "p": test["p"],
            "p_holm": test["p"], "family": 1, "significant": test["p"] <= ALPHA}


def describe_summary(evaluations, facts, sure=None):
    """Sentences on accuracy, errors, size, FLOPs, latency and training speed, from ``facts`` (the
    section's result); with ``sure`` (the report's :class:`~models.analysis.compare.intervals.Certainty`)
    every accuracy carries its interval and every comparison its test."""
    e = evaluations
    names = list(e)
    n = e[names[0]].n_images
    errors = {name: e[name].n_images - int(e[name].correct.sum()) for name in names}
    shown = {name: pct(e[name].accuracy, 2) + (f" ({accuracy_interval(sure, name)})" if sure else "")
             for name in names}
    text = [f"On the {n:,} test images " + join_words(
        f"the {title_of(name)} is right {shown[name]} of the time ({errors[name]:,} errors)"
        if i == 0 else f"the {title_of(name)} {shown[name]} ({errors[name]:,})"
        for i, name in enumerate(names)) + "."]
    order = sorted(names, key=lambda name: errors[name])
    fewest, most = order[0], order[-1]
    if errors[most] > errors[fewest] > 0:
        text.append(f"The {title_of(most)} makes {ratio_words(errors[most], errors[fewest])} as many "
                    f"errors as the {title_of(fewest)}"
                    + (f": {sure.accuracy_verdicts(most, fewest)}" if sure else "") + ".")
    p, f = facts["parameters"], facts["flops"]
    by_size = sorted(names, key=lambda name: p[name])
    by_flops = sorted(names, key=lambda name: f[name])
    text.append(f"The {title_of(by_size[-1])} has the most parameters ({p[by_size[-1]]:,}), "
                f"{ratio_words(p[by_size[-1]], p[by_size[0]])} as many as the "
                f"{title_of(by_size[0])} ({p[by_size[0]]:,}); the {title_of(by_flops[-1])} needs the "
                f"most FLOPs per image ({f[by_flops[-1]] / 1e6:.2f} MFLOPs), "
                f"{ratio_words(f[by_flops[-1]], f[by_flops[0]])} those of the {title_of(by_flops[0])} "
                f"({f[by_flops[0]] / 1e6:.2f} MFLOPs).")
    lat = facts["latency"]
    text.append("One image takes " + join_words(
        f"{seconds_words(lat[name])} to classify with the {title_of(name)}" if i == 0 else
        f"{seconds_words(lat[name])} with the {title_of(name)}" for i, name in enumerate(names))
                + f" (median of {facts['latency_calls']} calls on this machine).")
    speed = {name: facts["training_speed"][name]["images_per_second"] for name in names}
    fast = sorted(names, key=lambda name: -speed[name])
    text.append(f"Measured in this run, the {title_of(fast[0])} trains fastest ({speed[fast[0]]:,.0f} "
                f"images/s) and the {title_of(fast[-1])} slowest ({speed[fast[-1]]:,.0f} images/s, "
                f"{ratio_words(speed[fast[0]], speed[fast[-1]])} slower); at that speed an epoch of "
                f"48,000 training images would take {48_000 / speed[fast[0]]:,.0f} s and "
                f"{48_000 / speed[fast[-1]]:,.0f} s"
                + (f"; the two rates are {verdict(speed_test(facts['training_speed'], fast[0], fast[-1]))}"
                   if sure and "step_seconds" in facts["training_speed"][fast[0]] else "") + ".")
    return text


def _setting(sure):
    return "setting " + sure.study.setting if sure.study.setting != "default" else "default recipe"


def _study_images(sure):
    counts = sorted({sure.study.test_images(name) for name in sure.study.runs})
    return " or ".join(f"{count:,}" for count in counts)


class GlanceSection(Section):
    key = "glance"
    title = "At a glance"

    def compute(self, context):
        names, models = context.names, context.models
        context.log(f"timing training steps ({context.speed_seconds:g} s per model, batch {SPEED_BATCH})")
        speed = {name: training_speed(models[name], context.images, context.labels,
                                      seconds=context.speed_seconds) for name in names}
        context.log(f"timing single-image predictions ({context.latency_calls} calls per model)")
        latency = {name: single_image_latency(models[name], context.images[0], context.latency_calls)
                   for name in names}
        return {"parameters": {name: int(models[name].num_parameters()) for name in names},
                "flops": {name: int(models[name].flops()) for name in names},
                "latency": latency, "latency_calls": context.latency_calls,
                "training_speed": speed, "speed_seconds": context.speed_seconds,
                "threads": numba_threads(), "threads_flag": context.threads_flag, "cores": os.cpu_count(),
                "load_average": context.load_average}

    def markdown(self, context, result, figures):
        e, facts = context.evaluations, result
        sure = certainty(context)
        rows = []
        for name in context.names:
            a = sure.accuracy[name]
            seeds = []
            if sure.seeds:
                values = list(sure.study.test_accuracies(name).values())
                seeds = [f"{seeds_cell(values, 2)} ({len(values)})" if values else "-"]
            rows.append([title_of(name), pct(e[name].accuracy, 2), f"{pct(a['low'], 2)} - {pct(a['high'], 2)}",
                         *seeds, f"{e[name].n_images - int(e[name].correct.sum()):,}",
                         f"{facts['parameters'][name]:,}", f"{facts['flops'][name] / 1e6:.2f}",
                         f"{facts['training_speed'][name]['images_per_second']:,.0f}",
                         seconds_words(facts["latency"][name])])
        seeds_header = ["over seeds: mean ± 95 % CI (seeds)"] if sure.seeds else []
        lines = [table(["model", "test accuracy", "95 % interval (single run)", *seeds_header, "errors",
                        "parameters", "MFLOPs / image", "training images / s", "1-image latency"], rows), ""]
        lines += [f"The interval beside each accuracy is the exact (Clopper-Pearson) 95 % interval over the "
                  f"{e[context.names[0]].n_images:,} test images: a single run, so it shows the test images' "
                  f"luck, not the training seed's."
                  + (f" Over seeds: the study in `{sure.study.folder}` ({_setting(sure)}), each model "
                     f"trained with several seeds and tested on its {_study_images(sure)} test images; "
                     f"the mean ± the half-width of the 95 % t interval. Comparisons below are decided "
                     f"over seeds where the study has both models." if sure.seeds else
                     " No study was given (`--study DIR`): comparisons below are decided on this single "
                     "run, image by image."), ""]
        lines += bullets(describe_summary(e, facts, sure))
        speed = next(iter(facts["training_speed"].values()))
        threads = facts["threads"]
        lines += [f"Machine: {context.machine}. Training speed is measured in this run, not taken from "
                  f"the training logs: for each model a fresh copy trains on batches of "
                  f"{speed['batch_size']} (forward in training mode, backward, an Adam step; no "
                  f"augmentation) for {facts['speed_seconds']:g} s after {SPEED_WARMUP} untimed steps, and "
                  f"the rate is the batch size over the median step time, "
                  + (f"with {threads} thread{'s' if threads != 1 else ''} for BLAS and Numba "
                     f"(`--threads {threads}`)" if facts["threads_flag"] else
                     f"with {threads} Numba thread{'s' if threads != 1 else ''}")
                  + f" on {facts['cores']} CPU core{'s' if facts['cores'] != 1 else ''}; the load average was "
                  f"{facts['load_average']:.1f} when the run started, and other work on the machine slows "
                  f"these numbers down. For the kit's speed side by side with PyTorch in one run, see "
                  f"`bench/bench.py`. Latency is the median of {facts['latency_calls']} calls of "
                  f"`predict_proba` on one image after {LATENCY_WARMUP} warm-up calls.", ""]
        return lines

    def json(self, context, result):
        """Every number but the step times (their summary stays: steps, seconds, rates)."""
        return {**result, "training_speed": {name: {key: value for key, value in speed.items() if key != "step_seconds"}
                                             for name, speed in result["training_speed"].items()}}

    def console(self, context, result):
        """The summary table printed at the end of the run."""
        lines = [f"{'model':<8}{'accuracy':>10}{'errors':>8}{'parameters':>12}{'MFLOPs':>8}"
                 f"{'train img/s':>13}{'latency':>10}"]
        for name, e in context.evaluations.items():
            lines.append(f"{title_of(name):<8}{100 * e.accuracy:>9.2f}%{e.n_images - int(e.correct.sum()):>8,}"
                         f"{result['parameters'][name]:>12,}{result['flops'][name] / 1e6:>8.2f}"
                         f"{result['training_speed'][name]['images_per_second']:>13,.0f}"
                         f"{result['latency'][name] * 1000:>8.2f}ms")
        return lines
