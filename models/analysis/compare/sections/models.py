"""The models: one line each, its title, name, parameter count and the description of its model file."""
from models.analysis.compare.markdown import title_of
from models.analysis.compare.section import Section


class ModelsSection(Section):
    key = "models"
    title = "The models"

    def markdown(self, context, result, figures):
        return [f"- **{title_of(name)}** (`{name}`, {int(model.num_parameters()):,} parameters): "
                f"{model.spec.description}" for name, model in context.models.items()] + [""]

    def json(self, context, result):
        return {"descriptions": {name: model.spec.description for name, model in context.models.items()}}
