"""The sections of the comparison report, one module each, in the order the report shows them.

A new section is a module here with a :class:`models.analysis.compare.section.Section` subclass,
and its class named in :data:`SECTIONS`.
"""
from models.analysis.compare.sections.confusion import ConfusionSection
from models.analysis.compare.sections.disagreement import DisagreementSection
from models.analysis.compare.sections.glance import GlanceSection
from models.analysis.compare.sections.memory import MemorySection
from models.analysis.compare.sections.models import ModelsSection
from models.analysis.compare.sections.per_class import PerClassSection
from models.analysis.compare.sections.reproduce import ReproduceSection
from models.analysis.compare.sections.robustness import RobustnessSection
from models.analysis.compare.sections.training import TrainingSection

SECTIONS = (ModelsSection, GlanceSection, TrainingSection, PerClassSection, ConfusionSection,
            DisagreementSection, RobustnessSection, MemorySection, ReproduceSection)


def default_sections():
    """A fresh instance of every section, in report order."""
    return [section() for section in SECTIONS]
