from careplan.main import run

run()
