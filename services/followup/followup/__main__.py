from followup.main import run

run()
