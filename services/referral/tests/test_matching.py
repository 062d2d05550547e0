from referral.domain.matching import Directory, best_program

DIRECTORY = Directory.load()


def test_seed_directory_has_a_program_for_each_library_category():
    for category in (
        "behavioral-health",
        "food-assistance",
        "housing-assistance",
        "transportation",
        "case-management",
    ):
        assert best_program(DIRECTORY, category) is not None


def test_no_program_for_an_unknown_category():
    assert best_program(DIRECTORY, "space-travel") is None
