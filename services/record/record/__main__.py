from record.main import run

run()
