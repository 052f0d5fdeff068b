"""The wire format of the HTTP API (the search spec itself is in spec.py)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.documents import Objective

GroupStatus = Literal["created", "running", "done", "stopped", "failed"]
TrialStatus = Literal["pending", "running", "succeeded", "failed", "stopped", "expired"]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MetricName = Annotated[str, Field(min_length=1, max_length=200)]
MetricValues = Annotated[dict[MetricName, FiniteFloat], Field(max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrialView(BaseModel):
    id: int
    group_id: int
    config_index: int = Field(
        description="Position of this configuration in the algorithm's order."
    )
    attempt: int = Field(description="0, or how many times an expired lease re-offered it.")
    params: dict[str, Any]
    status: TrialStatus
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    objective: float | None = Field(None, description="The group objective's final value.")
    values: dict[str, float] | None = Field(None, description="Final values given at completion.")
    stop_reason: str | None = None
    replaces_id: int | None = Field(None, description="The expired trial this one re-offers.")
    bracket: int | None = Field(None, description="Hyperband: the bracket (s) of this trial.")
    rung: int | None = Field(None, description="Hyperband: the rung (k) within its bracket.")
    resource: int | float | None = Field(
        None, description="Hyperband: what to train with; also in `params` under its name."
    )
    resume_from: int | None = Field(
        None, description="Hyperband: the trial this one continues (a promotion)."
    )
    resume: bool | None = Field(
        None,
        description="Hyperband: true to load `resume_from`'s checkpoint, false to start afresh.",
    )
    source: Literal["algorithm", "user", "import"] = Field(
        "algorithm",
        description="Who proposed it: the algorithm, the user (enqueued), or an import.",
    )
    reason: dict[str, Any] | None = Field(
        None,
        description=(
            "Model-based search: why it was suggested (phase, acquisition value, predicted "
            "mean and deviation, how running trials were accounted for)."
        ),
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TrialCounts(BaseModel):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    stopped: int = 0
    expired: int = 0


class RungView(BaseModel):
    """One rung of a Hyperband bracket: what it trains with, who ran, who went on."""

    bracket: int
    rung: int
    resource: int | float
    planned: int | None = Field(description="Trials the plan gives this rung (None for ASHA).")
    counts: TrialCounts
    promoted: int = Field(description="Trials of this rung continued at the next rung.")
    best_value: float | None


class GroupSummary(BaseModel):
    id: int
    project_id: int = Field(description="The project the group belongs to.")
    name: str | None
    algorithm: str
    status: GroupStatus
    status_reason: str | None
    concurrency: int
    objective: Objective | None
    planned_trials: int | None = Field(description="Configurations the algorithm will propose.")
    proposed_trials: int = Field(description="Configurations proposed so far.")
    finished_trials: int = Field(0, description="Trials that succeeded, failed or were stopped.")
    best_value: float | None = Field(None, description="The best objective value so far.")
    created_at: datetime
    updated_at: datetime


class GroupView(GroupSummary):
    description: str | None
    seed: int
    lease_seconds: int
    warnings: list[str]
    counts: TrialCounts
    best_trial: TrialView | None
    hptuning: dict[str, Any] = Field(description="The normalised search spec.")
    rungs: list[RungView] | None = Field(None, description="Hyperband: brackets and rungs.")
    started_at: datetime | None
    finished_at: datetime | None


class GroupPage(BaseModel):
    items: list[GroupSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TrialPage(BaseModel):
    items: list[TrialView]
    next_cursor: str | None


class SuggestionRequest(Strict):
    count: int = Field(1, ge=1, le=1000)
    worker_id: str | None = Field(None, min_length=1, max_length=200)
    wait_seconds: float = Field(
        0, ge=0, le=3600, description="Wait up to this long for a trial when none is free now."
    )


class SuggestionResponse(BaseModel):
    trials: list[TrialView]
    group_status: GroupStatus
    retry_after: float | None = Field(
        None, description="When no trial was given and the group still runs: seconds to wait."
    )


class MetricsReport(Strict):
    values: MetricValues = Field(min_length=1)
    step: int | None = Field(
        None, ge=0, le=2**62, description="Defaults to one past the trial's last step."
    )


class Heartbeat(Strict):
    worker_id: str | None = Field(None, min_length=1, max_length=200)


class StopAnswer(BaseModel):
    should_stop: bool
    reason: str | None = None
    lease_expires_at: datetime | None = None


class CompleteRequest(Strict):
    status: Literal["succeeded", "failed", "stopped"]
    values: MetricValues | None = None


class TrialRequest(Strict):
    """A configuration the user wants tried; it is handed out before the algorithm's own."""

    params: dict[str, Any] = Field(min_length=1)


class MetricSeries(BaseModel):
    """Every value a trial reported for one metric, in step order."""

    trial_id: int
    name: str
    steps: list[int]
    values: list[float]


class MetricSeriesList(BaseModel):
    items: list[MetricSeries]
    truncated: bool = Field(
        False, description="True when the group has more trials than were returned."
    )


class Deleted(BaseModel):
    id: int


ProjectName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Lower-case letters, digits, `-` and `_`; up to 64 characters.",
    ),
]


class ProjectRequest(Strict):
    name: ProjectName


class ProjectView(BaseModel):
    id: int
    name: str
    groups: int = Field(description="How many groups the project holds.")
    created_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectView]


class KeyRequest(Strict):
    role: Literal["read", "write"] = Field(
        description="`read`: look only (GET); `write`: also create groups and run trials."
    )
    name: str | None = Field(None, min_length=1, max_length=200, description="A note: whose key.")


class KeyView(BaseModel):
    key_id: str = Field(description="The public part of the key: names it, revokes it.")
    project: str
    role: Literal["read", "write"]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyView):
    key: str = Field(description="The key to send as `Authorization: Bearer <key>`; shown once.")


class KeyList(BaseModel):
    items: list[KeyView]


class Identity(BaseModel):
    """Who the service takes the caller for."""

    role: Literal["read", "write", "admin"]
    project: str | None = Field(description="The key's project; null for the admin (all).")
    key_id: str | None = None
    open: bool = Field(description="True when the service runs without keys (local use).")


class Problem(BaseModel):
    """An RFC 9457 problem; `errors` lists each faulty field of a 422."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] = []
