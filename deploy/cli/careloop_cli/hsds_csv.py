"""An HSDS 3.0 dataset as a CSV package and back. Pure: files only, no network.

The JSON form is referral's (``POST``/``GET /v1/directory/hsds``): a key per HSDS table, each an array
of rows. The CSV package is HSDS 3.0's tabular form: one CSV per non-empty table (the file HSDS names,
e.g. ``services.csv``), a header row of the table's HSDS fields, then any other field the rows have
(``careloop_agency_id``, ...) as extra columns, and a Frictionless ``datapackage.json`` naming each
resource, its path and its fields with their types.

Cells (CSV has only text): null or absent is an empty cell; text is as it is; numbers as JSON writes
them; booleans ``true``/``false``; an array or object (HSDS 3.0's CSV form has none) as JSON text.
Reading, a field's type (the package's, else HSDS 3.0's, else ``string``) says how to read a cell:
``number``/``integer`` as a number, ``boolean`` from true/false/1/0, ``object``/``array`` as JSON;
a cell that does not read as its type stays text (the service then says what is wrong with it).
An empty cell is null, so the row is read without that field (Frictionless's ``missingValues``) --
except in a column the package declares with ``"missingValues": []``, where it is the empty string:
the export declares that for a column holding empty strings and no nulls. An empty string in a column
that also has nulls is read back as null.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from careloop_cli.hsds_tables import FIELDS, PATHS, TABLES

Dataset = dict[str, list[dict[str, Any]]]
PACKAGE = "datapackage.json"
_TRUE, _FALSE = ("true", "True", "TRUE", "1"), ("false", "False", "FALSE", "0")


class PackageError(ValueError):
    """A package that cannot be read: says which file and row."""


@dataclass
class Package:
    """A dataset read from CSV, with where each row came from: (file name, row number, 1 = first
    row under the header), in the order of the dataset's rows."""

    dataset: Dataset = field(default_factory=dict)
    origin: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def _kind(values: list[Any]) -> str:
    """The Table Schema type of an extra column, from its values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "number"
    for type_, kind in (("object", dict), ("array", list)):
        if present and all(isinstance(v, kind) for v in present):
            return type_
    return "string"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _value(text: str, type_: str) -> Any:
    try:
        if type_ == "integer":
            return int(text)
        if type_ == "number":
            return int(text) if text.lstrip("-").isdigit() else float(text)
        if type_ == "boolean" and text in _TRUE + _FALSE:
            return text in _TRUE
        if type_ in ("object", "array"):
            parsed = json.loads(text)
            return parsed if isinstance(parsed, dict if type_ == "object" else list) else text
    except ValueError:
        pass
    return text


def _schema(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's fields: HSDS's, in its order, then the rows' other fields by name."""
    known = {f.name for f in FIELDS[table]}
    extra = sorted({k for row in rows for k in row} - known)
    fields: list[dict[str, Any]] = [
        {"name": f.name, "type": f.type, **({"constraints": {"required": True}} if f.required else {})}
        for f in FIELDS[table]
    ]
    fields += [{"name": k, "type": _kind([row.get(k) for row in rows])} for k in extra]
    for f in fields:
        values = [row.get(f["name"]) for row in rows]
        if "" in values and None not in values:
            f["missingValues"] = []  # every row has it: an empty cell is the empty string
    return fields


def write_package(dataset: Dataset, directory: Path) -> list[Path]:
    """One CSV per non-empty table and ``datapackage.json``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(dataset) - set(TABLES))
    if unknown:
        raise PackageError(f"not HSDS tables: {', '.join(unknown)}")
    resources, written = [], []
    for table in TABLES:
        rows = dataset.get(table) or []
        if not rows:
            continue
        fields = _schema(table, rows)
        path = directory / PATHS[table]
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([f["name"] for f in fields])
            writer.writerows([_cell(row.get(f["name"])) for f in fields] for row in rows)
        written.append(path)
        schema = {"fields": fields, "primaryKey": "id"}
        resources.append(
            {"name": table, "path": PATHS[table], "profile": "tabular-data-resource", "format": "csv",
             "mediatype": "text/csv", "encoding": "utf-8", "schema": schema}
        )  # fmt: skip
    descriptor = {
        "name": "careloop-directory",
        "title": "careloop directory as Open Referral HSDS 3.0",
        "profile": "tabular-data-package",
        "resources": resources,
    }
    (directory / PACKAGE).write_text(json.dumps(descriptor, indent=1, ensure_ascii=False) + "\n")
    written.append(directory / PACKAGE)
    return written


_Resource = tuple[str, Path, dict[str, dict[str, Any]], list[str]]


def _resources(directory: Path) -> list[_Resource]:
    """(table, CSV path, declared fields by name, schema-level missing values) per resource."""
    descriptor_path = directory / PACKAGE
    if descriptor_path.exists():
        try:
            descriptor = json.loads(descriptor_path.read_text(encoding="utf-8-sig"))
        except ValueError as exc:
            raise PackageError(f"{PACKAGE}: not JSON ({exc})") from exc
        out: list[_Resource] = []
        for i, res in enumerate(descriptor.get("resources") or []):
            name, path = res.get("name"), res.get("path")
            if name not in TABLES or not isinstance(path, str):
                raise PackageError(f"{PACKAGE}: resource {i} ({name!r}) is not an HSDS table with a path")
            if not (directory / path).resolve().is_relative_to(directory.resolve()):
                raise PackageError(f"{PACKAGE}: resource {name} points outside the package ({path})")
            schema = res.get("schema") if isinstance(res.get("schema"), dict) else {}
            declared = {f["name"]: f for f in schema.get("fields") or [] if isinstance(f, dict)}
            out.append((name, directory / path, declared, list(schema.get("missingValues", [""]))))
        return out
    found: list[_Resource] = []
    names = {PATHS[t]: t for t in TABLES} | {f"{t}.csv": t for t in TABLES}
    for path in sorted(directory.glob("*.csv")):
        if path.name not in names:
            raise PackageError(f"{path.name}: not an HSDS table's file (e.g. services.csv or service.csv)")
        found.append((names[path.name], path, {}, [""]))
    if not found:
        raise PackageError(f"{directory}: no {PACKAGE} and no HSDS CSV files")
    return found


def _read_table(
    package: Package, table: str, path: Path, declared: dict[str, Any], missing: list[str]
) -> None:
    hsds = {f.name: f.type for f in FIELDS[table]}
    rows, origin = package.dataset.setdefault(table, []), package.origin.setdefault(table, [])
    with path.open(encoding="utf-8-sig", newline="") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header) or "" in header:
            raise PackageError(f"{path.name}: the header has an empty or repeated column name")
        kinds = [declared.get(n, {}).get("type") or hsds.get(n, "string") for n in header]
        absent = [declared.get(n, {}).get("missingValues", missing) for n in header]
        number = 0
        for cells in reader:
            if not cells:
                continue  # a blank line
            number += 1
            if len(cells) > len(header):
                raise PackageError(
                    f"{path.name} row {number}: {len(cells)} cells, the header has {len(header)}"
                )
            row = {
                name: _value(text, kind)
                for name, text, kind, gone in zip(header, cells, kinds, absent, strict=False)
                if text not in gone
            }
            rows.append(row)
            origin.append((path.name, number))


def read_package(directory: Path) -> Package:
    """A package (or a plain folder of ``<table>.csv`` or HSDS's file names) as the JSON form."""
    package = Package()
    for table, path, declared, missing in _resources(directory):
        if not path.exists():
            raise PackageError(f"{path.name}: named by {PACKAGE} but not there")
        _read_table(package, table, path, declared, missing)
    package.dataset = {t: rows for t, rows in package.dataset.items() if rows}
    package.origin = {t: package.origin[t] for t in package.dataset}
    return package
