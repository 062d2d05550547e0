"""intake as FHIR R4 (``/fhir/R4/``): pure mappers from its rows to resources, the import of a
QuestionnaireResponse into the assessment command, and the routes."""
