"""careloop followup: a durable scheduler that says exactly once when a follow-up is due."""
