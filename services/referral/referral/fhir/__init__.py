"""referral as FHIR R4 (``/fhir/R4/``): pure mappers from its referrals and directory to resources, the
reads they need beyond the loop's and the directory's stores, and the routes."""
