"""The naive baseline: a FastAPI endpoint that runs `transformers.pipeline` per request, no batching.

Run: python -m tools.bench.naive_server CHECKPOINT PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    inputs: str | list[str]


def build(checkpoint: str) -> FastAPI:
    from transformers import pipeline

    classifier = pipeline("text-classification", model=checkpoint, tokenizer=checkpoint, device=-1)
    app = FastAPI()

    @app.post("/classify")
    def classify(body: Body) -> Any:  # a plain def: FastAPI runs it in its thread pool, one request each
        return {"results": classifier(body.inputs, top_k=1, truncation=True)}

    @app.get("/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


if __name__ == "__main__":
    uvicorn.run(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
