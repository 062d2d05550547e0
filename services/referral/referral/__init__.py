"""careloop referral: a program directory, matching, and closed-loop referrals."""
