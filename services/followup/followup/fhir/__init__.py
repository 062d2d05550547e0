"""followup as FHIR R4 (``/fhir/R4/``): its follow-ups and work-queue tasks as ``Task``; pure mappers
in ``resources``, the reads FHIR needs beyond ``FollowupStore`` in ``store``, the routes in ``api``."""
