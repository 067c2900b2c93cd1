"""The Hugging Face task format on the task routes: `{"inputs": ..., "parameters": {...}}`.

A body with a `parameters` key is in this format and is answered with the bare pipeline output
(the model that answered goes in the `x-model` header); any other body is bertserve's own
format (options at the top level, answered as `{"model", "results"}`), unchanged.

The parameters are the task's own options (the pipeline's names and defaults), so both formats
run the same task request through the same service.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, create_model

from app.tasks.base import Task
from app.tasks.common import ClosedModel
from app.tasks.sequence import ClassificationResponse, LabelScore, SequenceTask

BERTSERVE_FORMAT = "bertserve"
HF_FORMAT = "huggingface"
FORMAT_TAGS = frozenset({BERTSERVE_FORMAT, HF_FORMAT})
"""The union tags pydantic puts into an error's location (left out of error messages)."""

ENVELOPE_FIELDS = ("inputs", "model")
"""Fields of a task request that are not options."""


class HFRequest(ClosedModel):
    """Base of the per-task Hugging Face request models (`inputs` and `parameters` added per task)."""

    model: str | None = Field(
        None, description="bertserve extension: the model to use; the task's default when null"
    )


def body_format(body: Any) -> str:
    """Which format a JSON body is in: a `parameters` key makes it the Hugging Face one."""
    if isinstance(body, dict) and "parameters" in body:
        return HF_FORMAT
    if isinstance(body, HFRequest):
        return HF_FORMAT
    return BERTSERVE_FORMAT


@cache
def parameters_model(task: Task[Any, Any]) -> type[BaseModel]:
    """The task's options as a model of their own (what `parameters` holds)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in task.request_model.model_fields.items()
        if name not in ENVELOPE_FIELDS
    }
    rules = getattr(task.request_model, "option_rules", {})
    base = type("OptionsBase", (ClosedModel,), {"model_config": ConfigDict(json_schema_extra=rules)})
    model: type[BaseModel] = create_model(
        f"{task.request_model.__name__.removesuffix('Request')}Parameters",
        __base__=base,
        __doc__=f"The options of /{task.name}, with the pipeline's names and defaults.",
        **fields,
    )
    return model


@cache
def hf_request_model(task: Task[Any, Any]) -> type[HFRequest]:
    """`{"inputs", "parameters", "model"?}` for one task."""
    inputs = task.request_model.model_fields["inputs"]
    params = parameters_model(task)
    model: type[HFRequest] = create_model(
        f"HF{task.request_model.__name__}",
        __base__=HFRequest,
        __doc__=f"/{task.name} in the Hugging Face task format; answered with the bare pipeline output.",
        inputs=(cast(Any, inputs.annotation), inputs),
        parameters=(params, Field(default_factory=params, description="the pipeline's options")),
    )
    return model


@cache
def body_annotation(task: Task[Any, Any]) -> Any:
    """The route's body: either format, told apart by the presence of `parameters`."""
    return Annotated[
        Annotated[task.request_model, Tag(BERTSERVE_FORMAT)]
        | Annotated[hf_request_model(task), Tag(HF_FORMAT)],
        Discriminator(body_format),
    ]


def to_task_request(task: Task[Any, Any], body: HFRequest) -> BaseModel:
    """The task request a Hugging Face body stands for (already validated: nothing re-checked)."""
    parameters: BaseModel = body.parameters  # type: ignore[attr-defined]
    options = {name: getattr(parameters, name) for name in type(parameters).model_fields}
    return task.request_model.model_construct(
        inputs=body.inputs,  # type: ignore[attr-defined]
        model=body.model,
        **options,
    )


def bare_output(task: Task[Any, Any], request: BaseModel, answer: BaseModel) -> Any:
    """The answer in the Hugging Face format: the pipeline's output, without the envelope.

    Text classification (and pairs) answers one list of labels per input even for a single
    input, as the Hugging Face Inference API does (the pipeline called with `[inputs]`): that is
    what `InferenceClient.text_classification` parses. QA and NER answer like the pipeline.
    """
    results = answer.results  # type: ignore[attr-defined]
    if isinstance(task, SequenceTask) and task.is_single(request):
        return [results]
    return results


@cache
def output_model(task: Task[Any, Any]) -> type[BaseModel]:
    """The documented 200 answer of a task route: the envelope, or the bare output."""
    if issubclass(task.response_model, ClassificationResponse):
        bare: Any = list[list[LabelScore]]
    else:
        bare = task.response_model.model_fields["results"].annotation
    envelope = task.response_model
    name = f"{task.request_model.__name__.removesuffix('Request')}Output"
    model: type[BaseModel] = create_model(
        name,
        __base__=RootModel[envelope | bare],  # type: ignore[valid-type]
        __doc__="bertserve format: the envelope; Hugging Face format (a body with `parameters`): "
        "the bare pipeline output",
    )
    return model
