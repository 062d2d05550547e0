"""An Open Referral HSDS 3.0 dataset as the directory takes and gives it: the tables as JSON arrays.

The document has one key per HSDS table (``organization``, ``service``, ``location``,
``service_at_location``, ``phone``, ...), each an array of that table's rows, as in the HSDS tabular
(CSV) package; a key the document does not know is refused. Rows that become directory entries
(organization, service, location, service_at_location) are checked field by field here, so a bad one
is a 422 naming the table, the row and the field. Rows of the other tables need only an id: they are
mapped where the directory has a place for them and kept as they are where it has none.

careloop's own facts travel in the rows as extension fields (``careloop_*``) and as attributes in
careloop's taxonomies (program category, needs addressed, requirements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from careloop_shared.body import Body, JsonTypes
from careloop_shared.contact import Email, Url
from referral.domain.directory import Id, ServiceStatus, Short, Text
from referral.domain.matching import CapacityStatus

# careloop's taxonomies: attribute -> taxonomy_term -> taxonomy, one per directory field.
TAXONOMIES = {
    "careloop-program-category": "program_category",
    "careloop-need": "needs",
    "careloop-requirement": "requirements",
}
TAXONOMY_NAMES = {
    "careloop-program-category": "careloop program categories",
    "careloop-need": "careloop needs addressed (Gravity SDOH domains)",
    "careloop-requirement": "careloop program requirements",
}
# A service area that is a postal-code prefix: extent_type "text", this name, the prefix as extent.
POSTAL_AREA = "postal_prefix"
# A service the dataset gives no careloop program category: matched by its needs only.
UNCATEGORISED = "uncategorised"
INTERPRETATION_AVAILABLE = "Interpretation available."

MAX_ROWS = 20_000  # per table; the body limit (CARELOOP_HTTP_MAX_BODY_BYTES) usually binds first
RowId = Annotated[str, Field(min_length=1, max_length=200)]
Age = Annotated[int, Field(ge=0, le=130)]


class Row(JsonTypes):
    """A row of any HSDS table: an id, and whatever fields the table has (kept as they are)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: RowId


class OrganizationRow(Row):
    id: Id
    name: Short
    description: Text | None = None
    email: Email | None = None
    website: Url | None = None
    careloop_agency_id: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        None, description="The careloop agency that answers its referrals; the organization's id if absent."
    )


class LocationRow(Row):
    id: Id
    location_type: Literal["physical", "postal", "virtual"]
    organization_id: Id | None = Field(None, description="If absent: the organization of a service there.")
    name: Short | None = Field(None, description="The location's id if absent.")


class ServiceRow(Row):
    id: Id
    organization_id: Id = Field(description="Required here: every careloop program belongs to one.")
    name: Short
    description: Text | None = None
    status: ServiceStatus
    email: Email | None = None
    url: Url | None = None
    interpretation_services: Text | None = Field(None, description="Any text means interpretation offered.")
    eligibility_description: Text | None = None
    minimum_age: Age | None = None
    maximum_age: Age | None = None
    careloop_capacity_status: CapacityStatus | None = None
    careloop_capacity_notes: Annotated[str, Field(max_length=500)] | None = None


class ServiceAtLocationRow(Row):
    service_id: RowId
    location_id: Id


Rows = Annotated[list[Row], Field(max_length=MAX_ROWS)]


class HsdsDataset(Body):
    """An HSDS 3.0 dataset: each table an array of its rows (the HSDS tabular package, as JSON)."""

    organization: Annotated[list[OrganizationRow], Field(max_length=MAX_ROWS)] = []
    service: Annotated[list[ServiceRow], Field(max_length=MAX_ROWS)] = []
    location: Annotated[list[LocationRow], Field(max_length=MAX_ROWS)] = []
    service_at_location: Annotated[list[ServiceAtLocationRow], Field(max_length=MAX_ROWS)] = []
    phone: Rows = []
    language: Rows = []
    schedule: Rows = []
    service_area: Rows = []
    attribute: Rows = []
    taxonomy_term: Rows = []
    taxonomy: Rows = []
    address: Rows = []
    contact: Rows = []
    program: Rows = []
    cost_option: Rows = []
    required_document: Rows = []
    funding: Rows = []
    accessibility: Rows = []
    organization_identifier: Rows = []
    url: Rows = []
    metadata: Rows = []
    meta_table_description: Rows = []


TABLES: tuple[str, ...] = tuple(HsdsDataset.model_fields)
# Fields of these tables' rows the directory holds itself; the rest of a row is kept beside the entry.
MAPPED_FIELDS = {
    "organization": {"id", "name", "description", "email", "website", "careloop_agency_id"},
    "location": {"id", "location_type", "organization_id", "name"},
    "service": {
        *("id", "organization_id", "name", "description", "status", "email", "url"),
        *("interpretation_services", "eligibility_description", "minimum_age", "maximum_age"),
        *("careloop_capacity_status", "careloop_capacity_notes"),
    },
}


def row_dict(row: Row) -> dict[str, Any]:
    """A row as plain JSON, absent and null fields left out (HSDS reads both the same)."""
    return {k: v for k, v in row.model_dump().items() if v is not None}


def new_extension() -> dict[str, Any]:
    """What an entry keeps of HSDS that the directory has no place for (its ``hsds`` column):
    ``row``, its own row's other fields; ``mapped``, by table and key, the other fields (the id
    included) of rows the directory holds as a value (a language code, an opening time);
    ``kept``, [table, row] pairs of rows it cannot hold at all, as they came."""
    return {"row": {}, "mapped": {}, "kept": []}


@dataclass(frozen=True)
class ImportHsds:
    """Add or update the dataset's organizations (with their locations) and services, all or none."""

    agency_id: str
    role: str
    by: str  # the person (token sub); ``role`` is theirs
    dataset: HsdsDataset


class HsdsImported(JsonTypes):
    """What an import added or updated."""

    organizations: int
    locations: int
    services: int
    shared_rows: int = Field(description="Rows that belong to no entry (taxonomies, terms), kept as given.")
