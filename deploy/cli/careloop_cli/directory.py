"""``careloop directory export DIR`` / ``import DIR``: referral's directory as an HSDS 3.0 CSV package.

Import posts the package to ``POST /v1/directory/hsds`` in chunks under the service's body limit
(``CARELOOP_HTTP_MAX_BODY_BYTES``, 256 KiB by default). Each chunk holds whole organizations: an
organization with every row that belongs to it (its services and locations, and their phones,
languages, schedules, addresses, contacts, ...; organizations linked by a row, e.g. a service at
another's location, go together), plus the taxonomy terms its attributes name; rows that belong to
no organization go in the first chunk. Each chunk is all-or-nothing on its own, not the import: a
refused chunk stops the import, and the chunks before it stay imported (an import is an upsert by
id, so running it again once the package is fixed is safe).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from careloop_cli.client import dev_token, service_url
from careloop_cli.hsds_csv import Dataset, Package, PackageError, read_package, write_package
from careloop_cli.hsds_tables import TABLES

PATH = "/v1/directory/hsds"
DEFAULT_LIMIT = 256 * 1024
# Where a row may point at the row it belongs to (referral reads the same keys).
_OWNER_KEYS = (
    *("service_id", "service_at_location_id", "location_id", "organization_id"),
    *("contact_id", "phone_id", "program_id", "link_id", "resource_id"),
)
_LOOSE = ("taxonomy", "taxonomy_term", "meta_table_description")  # never an organization's


class ImportRefused(Exception):
    """A chunk the service refused; the message says where in the CSV files and what was imported."""


@dataclass
class Chunk:
    dataset: Dataset = field(default_factory=dict)
    origin: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    organizations: list[str] = field(default_factory=list)
    ids: set[tuple[str, str]] = field(default_factory=set)
    size: int = 2  # the braces

    def add(self, table: str, row: dict[str, Any], where: tuple[str, int], size: int) -> None:
        if (table, str(row.get("id"))) in self.ids:
            return
        self.ids.add((table, str(row.get("id"))))
        if table not in self.dataset:
            self.dataset[table], self.origin[table] = [], []
            self.size += len(table) + 6  # "table":[],
        self.dataset[table].append(row)
        self.origin[table].append(where)
        self.size += size + 1

    def body(self) -> bytes:
        return _json(self.dataset)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class _Groups:
    """Organizations as groups (union-find): a row naming rows of two organizations joins them."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, org: str) -> str:
        self.parent.setdefault(org, org)
        while self.parent[org] != org:
            self.parent[org] = self.parent[self.parent[org]]
            org = self.parent[org]
        return org

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def _owners(ds: Dataset) -> tuple[dict[tuple[str, int], str], _Groups]:
    """Each row's organization, by (table, index); rows of none are left out."""
    groups, org_of = _Groups(), {}  # org_of: any row id -> its organization
    for row in ds.get("organization", []):
        org_of[str(row["id"])] = groups.find(str(row["id"]))
    for row in ds.get("service", []):
        if row.get("organization_id") is not None:
            org_of[str(row["id"])] = groups.find(str(row["organization_id"]))
    services_at = {
        str(r.get("location_id")): str(r.get("service_id")) for r in ds.get("service_at_location", [])
    }
    for row in ds.get("location", []):
        org = row.get("organization_id") or org_of.get(services_at.get(str(row["id"]), ""))
        if org is not None:
            org_of[str(row["id"])] = groups.find(str(org))
    for _ in range(4):  # a language of a phone of a contact of a service: a few steps at most
        for table in TABLES:
            if table in _LOOSE:
                continue
            for row in ds.get(table, []):
                named = [org_of[str(row[k])] for k in _OWNER_KEYS if str(row.get(k)) in org_of]
                if table != "organization" and row.get("id") is not None and named:
                    org_of.setdefault(str(row["id"]), named[0])
                for other in named[1:]:
                    groups.join(named[0], other)
    owner = {}
    for table in TABLES:
        for i, row in enumerate(ds.get(table, [])):
            if table not in _LOOSE and str(row.get("id")) in org_of:
                owner[(table, i)] = groups.find(org_of[str(row["id"])])
    return owner, groups


def chunks(package: Package, limit: int) -> list[Chunk]:
    """The package in chunks of whole organizations, each body at most ``limit`` bytes."""
    ds = package.dataset
    owner, _ = _owners(ds)
    sizes = {(t, i): len(_json(row)) for t in ds for i, row in enumerate(ds[t])}
    terms = {str(r.get("id")): i for i, r in enumerate(ds.get("taxonomy_term", []))}
    members: dict[str, list[tuple[str, int]]] = {}
    first = Chunk()
    for table in TABLES:
        for i, row in enumerate(ds.get(table, [])):
            if (table, i) in owner:
                members.setdefault(owner[(table, i)], []).append((table, i))
            else:
                first.add(table, row, package.origin[table][i], sizes[(table, i)])
    if first.size > limit:
        raise PackageError(
            f"the rows of no organization alone are {first.size} bytes, over the limit {limit}"
        )
    out, current = [], first

    def put(chunk: Chunk, rows: list[tuple[str, int]]) -> None:
        for table, i in rows:
            row = ds[table][i]
            chunk.add(table, row, package.origin[table][i], sizes[(table, i)])
            term = terms.get(str(row.get("taxonomy_term_id"))) if table == "attribute" else None
            if term is not None:
                where = package.origin["taxonomy_term"][term]
                chunk.add("taxonomy_term", ds["taxonomy_term"][term], where, sizes[("taxonomy_term", term)])

    for group, rows in members.items():
        trial = Chunk()
        put(trial, rows)
        if trial.size > limit:
            file, number = package.origin[rows[0][0]][rows[0][1]]
            raise PackageError(
                f"organization {group} ({file} row {number}) with its rows is {trial.size} bytes,"
                f" over the body limit {limit}: raise CARELOOP_HTTP_MAX_BODY_BYTES for referral"
            )
        if current.size + trial.size > limit:  # an upper bound: start a new chunk with this group
            out.append(current)
            current = Chunk()
        put(current, rows)
        current.organizations.append(group)
    out.append(current)
    return [c for c in out if c.dataset]


def where(chunk: Chunk, loc: list[Any]) -> str:
    """A problem's ``loc`` (``["body", table, row, field]`` in the chunk) as the CSV file and row."""
    if (
        len(loc) >= 3
        and loc[1] in chunk.origin
        and isinstance(loc[2], int)
        and loc[2] < len(chunk.origin[loc[1]])
    ):
        file, number = chunk.origin[loc[1]][loc[2]]
        return f"{file} row {number}" + (f", field {'.'.join(map(str, loc[3:]))}" if len(loc) > 3 else "")
    return ".".join(map(str, loc))


def import_package(http: httpx.Client, directory: Path, limit: int, say: Any = print) -> dict[str, int]:
    """Post the package chunk by chunk; the summed counts. ImportRefused on a 422 or 413."""
    parts = chunks(read_package(directory), limit)
    totals: dict[str, int] = {}
    for n, chunk in enumerate(parts, 1):
        done = f"chunks 1-{n - 1} are imported, {n}-{len(parts)} are not" if n > 1 else "nothing is imported"
        try:
            response = http.post(PATH, content=chunk.body(), headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise ImportRefused(f"chunk {n} of {len(parts)}: {type(exc).__name__} ({done})") from exc
        if response.status_code == 422:
            detail = response.json().get("detail") or []
            lines = [f"  {where(chunk, p.get('loc', []))}: {p.get('msg')} ({p.get('type')})" for p in detail]
            raise ImportRefused("\n".join([f"chunk {n} of {len(parts)} refused ({done}):", *lines]))
        if response.status_code == 413:
            raise ImportRefused(
                f"chunk {n} of {len(parts)}: 413 {response.text[:200]} ({done});"
                " give --max-body-bytes the service's CARELOOP_HTTP_MAX_BODY_BYTES"
            )
        response.raise_for_status()
        for key, count in response.json().items():
            totals[key] = totals.get(key, 0) + count
        say(f"chunk {n} of {len(parts)}: {len(chunk.organizations)} organizations, {len(chunk.body())} bytes")
    return totals


def export_package(http: httpx.Client, directory: Path) -> list[Path]:
    response = http.get(PATH)
    response.raise_for_status()
    return write_package(response.json(), directory)


def _client(args: argparse.Namespace) -> httpx.Client:
    token = dev_token(args.agency, args.role, args.person)
    return httpx.Client(
        base_url=service_url("referral"), timeout=args.timeout, headers={"Authorization": f"Bearer {token}"}
    )


def cmd_directory(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    try:
        with _client(args) as http:
            if args.action == "export":
                written = export_package(http, directory)
                print(f"wrote {len(written) - 1} tables and datapackage.json into {directory}")
                return 0
            totals = import_package(http, directory, args.max_body_bytes)
    except (PackageError, ImportRefused, OSError) as exc:
        print(f"careloop directory {args.action}: {exc}")
        return 1
    print("imported " + ", ".join(f"{count} {key}" for key, count in totals.items()))
    return 0


HELP = """export: the directory into DIR as an HSDS 3.0 CSV package (one CSV per table, datapackage.json).
import: DIR (such a package, or a folder of <table>.csv) into the directory, posted in chunks of whole
organizations under the service's body limit. Each chunk is all-or-nothing, the import is not: when a
chunk is refused, the chunks before it stay imported; fix the rows named and run it again (an upsert)."""


def add_parser(sub: Any, agency: argparse.ArgumentParser) -> None:
    """``careloop directory {export,import} DIR``: the subparser main.py adds."""
    # Not parents=[agency]: its actions are shared by every command, and a default changed here (admin,
    # a directory administrator) would change theirs too.
    p = sub.add_parser("directory", help="the directory as an HSDS CSV package, out and in",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for action in agency._actions:
        flags, dest = action.option_strings, action.dest
        default = "admin" if dest == "role" else action.default
        p.add_argument(*flags, dest=dest, default=default, help=action.help)
    p.add_argument("action", choices=["export", "import"])
    p.add_argument("dir", help="the package's folder")
    limit = int(os.environ.get("CARELOOP_HTTP_MAX_BODY_BYTES", DEFAULT_LIMIT))
    p.add_argument(
        "--max-body-bytes", type=int, default=limit, help="referral's body limit (default: %(default)s)"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.set_defaults(run=cmd_directory)
