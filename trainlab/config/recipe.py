"""The config's sections for fast training recipes (airbench94's ideas), usable by any image config:
a moving average of the weights, Lookahead, batch-norm settings, and when to validate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EMAConfig(_Section):
    enabled: bool = Field(False, description="evaluate, checkpoint and test an exponential moving average of the weights")
    decay: float = Field(0.999, gt=0, lt=1, description="weight of the average at each update (per `every` steps)")
    every: int = Field(1, ge=1, description="update the average every N optimizer steps")


class LookaheadConfig(_Section):
    enabled: bool = Field(False, description="Lookahead (Zhang et al. 2019): every N steps the weights move to slow weights")
    every: int = Field(5, ge=1, description="steps between two updates of the slow weights")
    decay: float = Field(0.95**5, ge=0, lt=1, description="weight of the slow weights at an update (airbench: 0.95**5)")
    ramp: Literal["none", "cubic"] = Field(
        "cubic", description="cubic: the decay grows as (step / total steps)**3, from 0 (airbench); none: constant"
    )


class BatchNormConfig(_Section):
    momentum: float | None = Field(None, gt=0, le=1, description="weight of each new batch in the running statistics "
                                   "(torch's sense; airbench: 0.4); default: the layer's (0.1)")  # fmt: skip
    eps: float | None = Field(None, gt=0, description="added to the variance (airbench: 1e-12); default: the layer's")
    train_weight: bool = Field(True, description="train the scale of every batch-norm layer (airbench: false, kept at 1)")
    train_bias: bool = Field(True, description="train the shift of every batch-norm layer")

    def is_default(self) -> bool:
        return self == BatchNormConfig()
