from referral.main import run

run()
