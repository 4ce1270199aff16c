"""OpenAI `Model` and `ListModelsResponse`."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct


class Model(Struct):
    id: str
    created: int
    owned_by: str
    object: Literal["model"] = "model"


class ModelList(Struct):
    data: list[Model]
    object: Literal["list"] = "list"
