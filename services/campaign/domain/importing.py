"""The rules of importing candidates and jobs from CSV: the columns each table takes, how a cell
is cleaned and checked (one pydantic model per row), and which rows of a file are reported rather
than stored. `importing.py` runs an import; `repository/imports.py` stores the good rows."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from services.campaign.domain.extraction import canonical_skills
from services.campaign.domain.privacy import Language
from shared.contracts.intent import Seniority

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}
SOURCE = "csv-import"


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # the shape the candidates table checks


_COUNTRY = re.compile(r"^[A-Z]{2}$")


_SKILL_SEPARATORS = re.compile(r"[;|]")


class ImportFileError(Exception):
    """The file as a whole cannot be imported: unreadable, not CSV, or required columns missing."""


def _text(value: Any) -> Any:
    """Cells are trimmed, an empty cell is NULL, and NUL (which PostgreSQL refuses) is an error."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value.strip() or None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _skills(value: Any) -> Any:
    return canonical_skills(_SKILL_SEPARATORS.split(value)) if isinstance(value, str) else []


ShortStr = Annotated[str, StringConstraints(max_length=300)]
LongStr = Annotated[str, StringConstraints(max_length=20_000)]
Name = Annotated[ShortStr | None, BeforeValidator(_text)]
Text = Annotated[LongStr | None, BeforeValidator(_text)]
Years = Annotated[Annotated[int, Field(ge=0, le=70)] | None, BeforeValidator(_text)]


class ImportRow(BaseModel):
    """Columns both files share. Validators run on the raw cells (strings or None)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    external_ref: Name = None
    city: Name = None
    country: Name = None
    seniority: Annotated[Seniority | None, BeforeValidator(lambda v: _lower(_text(v)))] = None
    skills: Annotated[list[str], BeforeValidator(_skills)] = Field(default_factory=list)

    @field_validator("country")
    @classmethod
    def _alpha2(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _COUNTRY.match(value.upper()):
            raise ValueError("must be a two-letter ISO 3166-1 country code, like DE")
        return value.upper()


class CandidateRow(ImportRow):
    """One line of a candidates file."""

    full_name: Annotated[ShortStr, BeforeValidator(_text)]
    first_name: Name = None
    email: Annotated[str, BeforeValidator(_text), StringConstraints(max_length=254)]
    timezone: Name = None
    years_experience: Years = None
    headline: Text = None
    summary: Text = None
    found_via: Text = None
    # The language to write to them in; empty: their country's (see domain/privacy.py).
    language: Annotated[Language | None, BeforeValidator(lambda v: _lower(_text(v)))] = None

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("is not an email address (name@example.com)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not _is_zone(value):
            raise ValueError("is not an IANA time zone, like Europe/Berlin")
        return value


class JobRow(ImportRow):
    """One line of a jobs file."""

    title: Annotated[ShortStr, BeforeValidator(_text)]
    team: Name = None
    remote: Annotated[bool, BeforeValidator(lambda v: _yes_no(_lower(v)))] = False
    description: Annotated[str, BeforeValidator(lambda v: _text(v) or "")] = ""
    # An empty cell means the table's default, as a missing column does.
    status: Annotated[
        Literal["open", "closed"], BeforeValidator(lambda v: _lower(_text(v)) or "open")
    ] = "open"


def _yes_no(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in _TRUE | _FALSE:
        return value.strip() in _TRUE
    return value  # pydantic reports anything else


@cache
def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Table:
    """What a file kind imports into, and how its rows are told apart from existing ones."""

    name: Literal["candidates", "jobs"]
    model: type[ImportRow]
    id_column: str
    required: tuple[str, ...]
    keys: tuple[str, ...]  # unique within a file; email compared case-insensitively

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.model.model_fields)


CANDIDATES = Table(
    "candidates", CandidateRow, "candidate_id", ("full_name", "email"), ("external_ref", "email")
)


JOBS = Table("jobs", JobRow, "job_id", ("title",), ("external_ref",))


@dataclass(frozen=True)
class RowError:
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.column}: {self.message}"


@dataclass
class ParsedFile:
    """The valid rows (with their line numbers), the row errors, and the header's columns."""

    columns: tuple[str, ...]
    ignored_columns: tuple[str, ...] = ()
    rows: list[tuple[int, ImportRow]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class RowSkipped:
    """A good row that was deliberately not stored: `reason` 'erased' is an address whose owner
    had their data erased (only its hash is kept), so it must never be stored again."""

    line: int
    reason: Literal["erased"]

    def __str__(self) -> str:
        return f"line {self.line}: skipped ({self.reason})"


@dataclass(frozen=True)
class ImportResult:
    imported: int
    updated: int
    errors: list[RowError]
    ignored_columns: tuple[str, ...] = ()
    skipped: list[RowSkipped] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({e.line for e in self.errors})

    @property
    def exit_code(self) -> int:
        """1 when there were rows and none could be stored; an empty file is not a failure."""
        return 1 if self.rejected and not (self.imported or self.updated) else 0


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) per CSV record; a quoted cell may span lines."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            start = 1
            for cells in reader:
                yield start, cells
                start = reader.line_num + 1
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path} is not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise ImportFileError(f"{path} is not valid CSV: {exc}") from exc


def _header(cells: list[str], table: Table) -> tuple[list[str], tuple[str, ...]]:
    names = [c.strip().lower() for c in cells]
    doubled = sorted({n for n in names if n and names.count(n) > 1})
    if doubled:
        raise ImportFileError(f"the header names {', '.join(doubled)} more than once")
    missing = [c for c in table.required if c not in names]
    if missing:
        raise ImportFileError(
            f"the header lacks the required column(s) {', '.join(missing)}; a {table.name} file"
            f" has the columns {', '.join(table.columns)}"
        )
    ignored = tuple(n for n in names if n not in table.columns)
    return names, ignored


def parse_csv(path: Path, table: Table) -> ParsedFile:
    """Read and validate a whole file; raises `ImportFileError` for file-level problems only."""
    records = _records(path)
    first = next(records, None)
    if first is None:
        raise ImportFileError(f"{path} is empty: the first line must name the columns")
    names, ignored = _header(first[1], table)
    parsed = ParsedFile(tuple(n for n in names if n in table.columns), ignored)
    wanted = [(i, n) for i, n in enumerate(names) if n in parsed.columns]
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue  # blank lines separate nothing
        if len(cells) > len(names):
            message = f"has {len(cells)} cells but the header names {len(names)} columns"
            parsed.errors.append(RowError(line, "(row)", message))
            continue
        raw = {n: cells[i] for i, n in wanted if i < len(cells)}
        try:
            parsed.rows.append((line, table.model.model_validate(raw)))
        except ValidationError as exc:
            parsed.errors.extend(_row_errors(line, exc))
    _reject_repeats(parsed, table)
    return parsed


def _row_errors(line: int, exc: ValidationError) -> list[RowError]:
    errors = []
    for error in exc.errors(include_url=False):
        column = str(error["loc"][0]) if error["loc"] else "(row)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing" or error.get("input", "") is None:
            message = "is required"  # an empty cell arrives as None
        errors.append(RowError(line, column, message))
    return errors


def _reject_repeats(parsed: ParsedFile, table: Table) -> None:
    """A key given twice in one file would update the same row twice: keep the first."""
    seen: dict[tuple[str, str], int] = {}
    kept: list[tuple[int, ImportRow]] = []
    for line, row in parsed.rows:
        keys = [(k, _key(k, getattr(row, k))) for k in table.keys if getattr(row, k) is not None]
        repeated = next((k for k in keys if k in seen), None)
        if repeated is not None:
            column = repeated[0]
            parsed.errors.append(
                RowError(line, column, f"repeats line {seen[repeated]}'s {column}")
            )
            continue
        seen.update(dict.fromkeys(keys, line))
        kept.append((line, row))
    parsed.rows = kept


def _key(column: str, value: object) -> str:
    return str(value).lower() if column == "email" else str(value)
