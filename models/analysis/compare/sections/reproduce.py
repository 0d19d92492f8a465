"""Reproduce: the command that made the report, where the data comes from, and how long it took."""
from models.analysis.compare.section import Section


class ReproduceSection(Section):
    key = "reproduce"
    title = "Reproduce"

    def markdown(self, context, result, figures):
        return ["```", context.command, "```", "",
                "The MNIST files are read from `--data DIR`, else `$MNIST_DIR`, else `./data/mnist`; "
                "`python -m models.compare --help` lists the options.", "",
                f"The whole run took {context.elapsed_seconds:.0f} s on this machine "
                f"({context.machine}).", ""]
