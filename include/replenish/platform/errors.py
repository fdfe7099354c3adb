"""Errors with stable codes. API clients get ``{"error": {"code", "message", "fields"?}}``, never a trace."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FieldError:
    """``field`` is a JSON pointer (RFC 6901) into the request part ``location``: ``/lines/0/qty`` in the body,
    ``/delivery_date`` in the query; ``""`` is the whole part (a body that is not JSON)."""

    field: str
    message: str
    location: str = "body"  # body | query | path | header


@dataclass
class PlatformError(Exception):
    status: int
    code: str
    message: str
    fields: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        err: dict = {"code": self.code, "message": self.message}
        if self.fields:
            err["fields"] = [{"field": f.field, "in": f.location, "message": f.message} for f in self.fields]
        return {"error": err}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def pointer(*parts: object) -> str:
    """A JSON pointer from path parts: ('lines', 0, 'qty') -> '/lines/0/qty' ('~' and '/' escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def not_found(what: str = "order") -> PlatformError:
    # Same answer for "does not exist" and "not yours": ids of other stores are not revealed.
    return PlatformError(404, "not_found", f"{what} not found")


def invalid(fields: list[FieldError], message: str | None = None) -> PlatformError:
    """422 with field errors; the message names them as the request validation's do ("invalid input: /f: ...")."""
    if message is None:
        message = "invalid input: " + "; ".join(f"{f.field or f.location}: {f.message}" for f in fields[:5])
    return PlatformError(422, "validation_error", message, fields)


def conflict(code: str, message: str) -> PlatformError:
    return PlatformError(409, code, message)


def has_control_chars(value: str | None) -> bool:
    """NUL and other control characters: PostgreSQL text cannot hold NUL, and no id or name needs them."""
    return bool(value) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value)  # type: ignore[union-attr]
