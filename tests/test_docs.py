"""docs/ stays true to the code: every code link points at the line that defines its name."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[`([A-Za-z_][\w.]*)`\]\(\.\./([^)#]+)#L(\d+)\)")


def definition_line(path, name):
    """1-based line defining ``name`` in ``path``: ``def``/``class``/assignment; for a dotted
    ``Class.method`` the first ``def method`` after ``class Class``.  None if not found."""
    lines = path.read_text().splitlines()
    start = 0
    *owners, short = name.split(".")
    for owner in owners:
        found = definition_line_from(lines, owner, start, kinds=("class",))
        if found is None:
            return None
        start = found
    return definition_line_from(lines, short, start)


def definition_line_from(lines, short, start, kinds=("def", "class", "=")):
    patterns = {"def": rf"^\s*(async\s+)?def {re.escape(short)}\b",
                "class": rf"^\s*class {re.escape(short)}\b",
                "=": rf"^\s*{re.escape(short)}\s*="}
    for kind in kinds:
        pattern = re.compile(patterns[kind])
        for number in range(start, len(lines)):
            if pattern.search(lines[number]):
                return number + 1
    return None


def anchor_problems(markdown):
    problems = []
    for name, target, line in LINK.findall(markdown.read_text()):
        path = (markdown.parent / ".." / target).resolve()
        if not path.is_file():
            problems.append(f"{name}: {target} does not exist")
            continue
        expected = definition_line(path, name)
        if expected is None:
            problems.append(f"{name}: not defined in {target} (renamed or deleted?)")
        elif abs(expected - int(line)) > 1:
            problems.append(f"{name}: {target}#L{line}, defined at line {expected}")
    return problems


def test_math_notes_link_to_the_current_definitions():
    markdown = REPO / "docs" / "math.md"
    assert LINK.search(markdown.read_text())
    assert anchor_problems(markdown) == [], "run 'python tests/test_docs.py' to re-point them"


def fix_anchors(markdown):
    """Rewrite every drifted anchor to its definition's current line (run this file to do it)."""
    def fix(match):
        name, target, line = match.groups()
        path = (markdown.parent / ".." / target).resolve()
        expected = definition_line(path, name) if path.is_file() else None
        return f"[`{name}`](../{target}#L{expected})" if expected else match.group(0)
    markdown.write_text(LINK.sub(fix, markdown.read_text()))


if __name__ == "__main__":  # python tests/test_docs.py: re-point docs/math.md's links
    fix_anchors(REPO / "docs" / "math.md")
    print("\n".join(anchor_problems(REPO / "docs" / "math.md")) or "all anchors point at their definitions")
