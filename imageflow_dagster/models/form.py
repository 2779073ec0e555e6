from pydantic import BaseModel, ConfigDict, Field


class FormField(BaseModel):
    model_config = ConfigDict(extra="allow")

    field_id: str
    label: str | None = None


class FormFieldsSchema(BaseModel):
    model_config = ConfigDict(extra="allow")

    fields: list[FormField] = Field(default_factory=list)


class Form(BaseModel):
    """Only the field labels matter here: they turn raw field ids into readable context."""

    model_config = ConfigDict(extra="allow")

    form_id: str
    form_fields_schema: FormFieldsSchema = Field(default_factory=FormFieldsSchema)

    def labels(self) -> dict[str, str]:
        return {f.field_id: f.label for f in self.form_fields_schema.fields if f.label}
