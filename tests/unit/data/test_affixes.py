from __future__ import annotations

from tuneforge.data.affixes import Absent, Affixes, LetterCase


def test_affixes_track_longest_common_prefix_and_suffix() -> None:
    affixes = Affixes()
    affixes.add_many(["Q: one ->", "Q: two ->"])
    affixes.add_many(["Q: three ->"])
    assert (affixes.prefix, affixes.suffix, affixes.all_equal) == ("Q: ", " ->", False)
    affixes.add_many(["->"])
    assert (affixes.prefix, affixes.suffix) == ("", "->")


def test_all_equal_is_tracked_across_chunks() -> None:
    affixes = Affixes()
    affixes.add_many(["same", "same"])
    affixes.add_many(["same"])
    assert affixes.all_equal
    affixes.add_many(["other"])
    assert not affixes.all_equal


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
    case.add("ABC def\x00x")
    case.add("ÉTÉ 12")
    assert (case.upper, case.lower) == (6, 4) and case.mostly_upper
