from intake.domain.patients import contact_problems, normalised_name, postal_area


def test_names_differing_only_in_accents_case_spacing_and_punctuation_share_a_key():
    assert normalised_name("José-María", "  de la Cruz ") == normalised_name("jose maria", "De La  Cruz")
    assert normalised_name("Ann", "Lee") != normalised_name("Anne", "Lee")


def test_postal_area_keeps_only_the_first_three_characters():
    assert postal_area("90210") == "902"
    assert postal_area("sw1a 1aa") == "SW1"
    assert postal_area(None) is None


def test_chosen_contact_needs_its_detail():
    assert contact_problems("text", None, None) == ["contact_preference text needs a phone number"]
    assert contact_problems("email", "555-0100", None) == ["contact_preference email needs an email address"]
    assert contact_problems("do-not-contact", None, None) == []
