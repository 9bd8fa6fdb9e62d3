from __future__ import annotations

from tuneforge.data.affixes import Absent, Affixes, LetterCase


def test_affixes_track_longest_common_prefix_and_suffix() -> None:
    affixes = Affixes()
    for text in ["Q: one ->", "Q: two ->", "Q: three ->"]:
        affixes.add(text)
    assert (affixes.prefix, affixes.suffix, affixes.all_equal) == ("Q: ", " ->", False)
    affixes.add("->")
    assert (affixes.prefix, affixes.suffix) == ("", "->")


def test_absent_keeps_only_candidates_found_nowhere() -> None:
    absent = Absent([" ->", "###", "==="], newline_free=frozenset({" ->"}))
    absent.add("plain text")
    assert absent.first() == " ->"
    absent.add("two\nlines")  # " ->" is unsafe once a prompt holds a newline
    absent.add("has ### inside")
    assert absent.candidates == ["==="]
    absent.add("===")
    assert absent.first() is None


def test_letter_case_counts_ascii_and_unicode_letters() -> None:
    case = LetterCase()
    for text in ["ABC def", "ÉTÉ 12", "x"]:
        case.add(text)
    assert (case.upper, case.lower) == (6, 4) and case.mostly_upper
