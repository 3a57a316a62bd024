"""What every operation refuses before it runs: unknown or repeated query parameters, not ignored (a
misspelt filter, `?stauts=bounced`, would otherwise answer with every contact, and a script acting on
the answer would act on them all), and text holding a NUL character, which PostgreSQL cannot store."""

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from pydantic import BaseModel


def refuse_unknown_parameters_and_nul(operation: Callable[..., Any]) -> Callable[..., Any]:
    known = _parameter_names(operation)

    @functools.wraps(operation)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        unknown = sorted(set(request.GET) - known)
        if unknown:
            raise ValidationError({name or "(no name)": "Not a parameter of this operation." for name in unknown})
        repeated = sorted(name for name in request.GET if len(request.GET.getlist(name)) > 1)
        if repeated:
            raise ValidationError({name: "Give this parameter once." for name in repeated})
        with_nul = sorted(name for name, value in kwargs.items() if _holds_nul(value))
        if with_nul:
            raise ValidationError({name: "Text may not hold a NUL character (\\u0000)." for name in with_nul})
        return operation(request, *args, **kwargs)

    return checked


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(item) for item in value)
    return False


def _parameter_names(operation: Callable[..., Any]) -> set[str]:
    """Every name the operation reads: its own parameters and the fields of its Query[...] models."""
    names = set()
    for name, annotation in typing.get_type_hints(operation, include_extras=True).items():
        names.add(name)
        for part in typing.get_args(annotation) or (annotation,):
            if inspect.isclass(part) and issubclass(part, BaseModel):
                names |= {field.alias or field_name for field_name, field in part.model_fields.items()}
    return names
