pytest_plugins = ["careloop_shared.testing"]
