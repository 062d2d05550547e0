"""careloop workspace: server-rendered pages over the services' HTTP APIs, for the people who do the work."""
