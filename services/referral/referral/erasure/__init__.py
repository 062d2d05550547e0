"""A patient's erasure (intake's PatientErased): the free text written about them in referral's tables
blanked, and no new free text about them accepted. The pseudonymous referrals go on. The notes kept in
the clear before notes were sealed are sealed in the background (``handlers.seal_notes_in_the_clear``)."""
