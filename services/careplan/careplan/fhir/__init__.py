"""careplan as FHIR R4 (``/fhir/R4/``): pure mappers from its rows to resources, its reads, and the routes."""
