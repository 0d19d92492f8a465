"""The one interface every section of the comparison report has.

A section is a class in a module of its own under ``sections/``; the report
(:mod:`models.analysis.compare.report`) calls, for each section in turn:

    result = section.compute(context)                    # its numbers
    files = section.figures(context, result, folder)     # its PNGs (when matplotlib is there)
    lines = section.markdown(context, result, figures)   # its text, under "## {section.title}"
    share = section.json(context, result)                # its top-level keys of report.json

so adding a section is adding one module and naming its class in ``sections.SECTIONS`` (or
passing the list to :func:`models.analysis.compare.report.write_report`).  Every sentence a
section writes is generated from its own numbers.
"""


class Section:
    key = ""     # short unique name: the log lines and the checks that sections stay apart use it
    title = ""   # the section's heading in report.md

    def compute(self, context):
        """The section's numbers, measured on ``context`` (None when it only reads the context).

        Anything the figures need may be kept here (the robustness section keeps its example
        digits); :meth:`json` chooses what of it goes into report.json."""
        return None

    def figures(self, context, result, folder):
        """Write the section's PNGs into ``folder``; returns {figure id: file name in folder}."""
        return {}

    def markdown(self, context, result, figures):
        """The section's lines under its heading; ``figures`` holds every figure of the report."""
        raise NotImplementedError

    def json(self, context, result):
        """The section's share of report.json: {top-level key: JSON-able value}."""
        return {}

    def console(self, context, result):
        """Lines printed on the terminal after the run (most sections print none)."""
        return []
