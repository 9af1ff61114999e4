"""The base of every settings section: unknown keys are errors that name the key."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
