"""careloop intake: patients, consent and assessments. The only service holding identifying details."""
