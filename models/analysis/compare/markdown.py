"""Words and Markdown shared by the report's sections: model titles, percentages, lists in
prose, tables, bullet lists and figure links."""
from models import registry
from nn.errors import UserError


def title_of(name):
    """A model's display title ('CNN') from its model file, else its name in capitals."""
    try:
        return registry.get(name).title
    except UserError:
        return name.upper()


def pct(value, digits=1):
    """0.9713 -> '97.1 %'."""
    return f"{100 * value:.{digits}f} %"


def number(value):
    """A level as the tables and figures write it: 1.0 -> '1', 0.5 -> '0.5'."""
    return f"{value:g}"


def seconds_words(seconds):
    """0.00053 -> '0.53 ms'; 80.5 -> '80.5 s'; None -> 'n/a'."""
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def ratio_words(a, b):
    """How many times a is b: '14.5x as many' style number."""
    return f"{a / b:.1f}x" if b else "n/a"


def join_words(parts):
    """['a'] -> 'a'; ['a', 'b'] -> 'a and b'; ['a', 'b', 'c'] -> 'a, b and c'."""
    parts = list(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def all_models(names):
    """'both models' or 'all 5 models'."""
    return "both models" if len(names) == 2 else f"all {len(names)} models"


def table(header, rows):
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def bullets(sentences):
    """One bullet per sentence, then a blank line."""
    return [f"- {sentence}" for sentence in sentences] + [""]


def figure_link(figures, key, alt):
    """The image link of figure ``key`` if it was drawn (no matplotlib: no figures), else ''."""
    return f"![{alt}]({figures[key]})\n" if key in figures else ""
