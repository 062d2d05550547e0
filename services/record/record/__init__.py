"""careloop record: every careloop event appended once to a per-patient hash chain."""
