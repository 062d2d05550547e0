"""careloop command-line tool: an HTTP client of the services, plus demo data and analytics replay."""
