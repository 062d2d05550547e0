"""HSDS 3.0's tabular form: each table's CSV file and fields, from the specification's datapackage.json.

A field is ``name``, ``name:type`` (Table Schema types; no suffix: string), ``!`` when HSDS requires it.
HSDS 3.0 has no array or object fields in its CSV form: the other tables hold what would nest.
``url`` is not an HSDS 3.0 table (3.1 adds it); referral takes it, so its fields come from the data.
"""

from __future__ import annotations

from dataclasses import dataclass

_SPEC = {
    "organization": ("organizations.csv", (
        "id! name! alternate_name description! email website tax_status tax_id "
        "year_incorporated:number legal_status logo uri parent_organization_id"
    )),
    "program": ("programs.csv", "id! organization_id! name! alternate_name description!"),
    "service": ("services.csv", (
        "id! organization_id! program_id name! alternate_name description url email status! "
        "interpretation_services application_process fees_description wait_time fees accreditations "
        "eligibility_description minimum_age:number maximum_age:number assured_date:date "
        "assurer_email licenses alert last_modified:datetime"
    )),
    "attribute": ("attributes.csv", "id! link_id! taxonomy_term_id! link_type link_entity! value"),
    "service_at_location": ("service_at_location.csv", "id! service_id! location_id! description"),
    "location": ("locations.csv", (
        "id! location_type! url organization_id name alternate_name description transportation "
        "latitude:number longitude:number external_identifier external_identifier_type"
    )),
    "phone": ("phones.csv", (
        "id! location_id service_id organization_id contact_id service_at_location_id number! "
        "extension:number type description"
    )),
    "contact": ("contacts.csv", (
        "id! organization_id service_id service_at_location_id location_id name title department "
        "email"
    )),
    "address": ("addresses.csv", (
        "id! location_id attention address_1! address_2 city! region state_province! postal_code! "
        "country! address_type!"
    )),
    "schedule": ("schedules.csv", (
        "id! service_id location_id service_at_location_id valid_from:date valid_to:date "
        "dtstart:date timezone:number until:date count:number wkst freq interval:number byday "
        "byweekno bymonthday byyearday description opens_at:time closes_at:time schedule_link "
        "attending_type notes"
    )),
    "funding": ("funding.csv", "id! organization_id service_id source"),
    "service_area": ("service_areas.csv", "id! service_id name description extent extent_type uri"),
    "required_document": ("required_documents.csv", "id! service_id document uri"),
    "language": ("languages.csv", "id! service_id location_id phone_id name code note"),
    "accessibility": ("accessibility.csv", "id! location_id description details url"),
    "taxonomy_term": ("taxonomy_terms.csv", (
        "id! code name! description! parent_id taxonomy language taxonomy_id term_uri"
    )),
    "metadata": ("metadata.csv", (
        "id! resource_id! resource_type! last_action_date:date! last_action_type! field_name! "
        "previous_value! replacement_value! updated_by!"
    )),
    "meta_table_description": ("meta_table_descriptions.csv", "id! name language character_set"),
    "cost_option": ("cost_options.csv", (
        "id! service_id! valid_from:date valid_to:date option currency amount:number "
        "amount_description"
    )),
    "organization_identifier": ("organization_identifiers.csv", (
        "id! organization_id! identifier_scheme identifier_type! identifier!"
    )),
    "taxonomy": ("taxonomies.csv", "id! name! description! uri version"),
    "url": ("url.csv", "id!"),
}  # fmt: skip


@dataclass(frozen=True)
class Field:
    name: str
    type: str = "string"
    required: bool = False


def _field(spec: str) -> Field:
    required = spec.endswith("!")
    name, _, type_ = spec.rstrip("!").partition(":")
    return Field(name, type_ or "string", required)


TABLES: tuple[str, ...] = tuple(_SPEC)
PATHS: dict[str, str] = {table: path for table, (path, _) in _SPEC.items()}
FIELDS: dict[str, tuple[Field, ...]] = {t: tuple(map(_field, spec.split())) for t, (_, spec) in _SPEC.items()}
