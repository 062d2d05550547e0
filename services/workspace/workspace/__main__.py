from workspace.main import run

run()
