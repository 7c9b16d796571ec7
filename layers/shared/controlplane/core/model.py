"""The shared kernel: the camelCase base model, the clock and the tier names every feature uses.

Field names are camelCase on the wire and in DynamoDB (docs/contracts.md); Python uses snake_case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def utc_now() -> str:
    """Timestamp in the format Step Functions uses for ``$$.State.EnteredTime`` (sorts as text)."""
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class CamelModel(BaseModel):
    """camelCase aliases, accepts either spelling, ignores attributes it does not know."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def wire(self) -> dict[str, Any]:
        """JSON-compatible dict with camelCase keys (what Lambda returns to the state machine)."""
        return self.model_dump(mode="json", by_alias=True)


class Tier(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


class BoundedCount(CamelModel):
    """A count read with a bounded query (Select=COUNT, one page of at most a fixed number of items): the
    value, and whether there may be more (the query stopped at its bound)."""

    value: int
    at_least: bool = False

    def __str__(self) -> str:
        return f"{self.value}+" if self.at_least else str(self.value)
