"""`careloop report` and the CLI's tables show text from events and from the services' answers as text:
never read as rich markup, and no character a terminal would act on reaches the reader's terminal."""

import io

from rich.console import Console

from careloop_cli.analytics.report import Figure, print_tables


def test_text_from_events_is_shown_as_text_and_what_a_terminal_acts_on_as_its_escape():
    hostile = ("[/oops]", "[bold red]loud[/]", "clear\x1b[2J", "\u202egnp.exe", "bell\x07", "c1\x9b")
    figure = Figure("needs", "Needs", ("agency_id", "need", "count"), tuple((a, a, 1) for a in hostile))
    out = io.StringIO()
    print_tables([figure], Console(file=out, width=200, color_system=None))  # "[/oops]" stopped it before
    shown = out.getvalue()
    assert "[/oops]" in shown and "[bold red]loud[/]" in shown
    for acted_on in ("\x1b", "\u202e", "\x07", "\x9b"):
        assert acted_on not in shown
    assert "clear\\u001b[2J" in shown and "\\u202egnp.exe" in shown and "bell\\u0007" in shown


def test_the_clis_tables_of_the_services_answers_show_their_text_as_text(monkeypatch):
    import careloop_cli.main as cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=200, color_system=None))
    cli._table("Patients", ["id", "name"], [["p-1", "[/Ann]"], ["p-2", "Bob\x1b]0;owned\x07"], ["p-3", None]])
    shown = out.getvalue()
    assert "[/Ann]" in shown and "Bob\\u001b]0;owned\\u0007" in shown and "\x1b" not in shown
