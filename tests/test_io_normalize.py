"""Canonical metadata spellings: messy inputs map to one form, and canonical input stays put."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roastcore.io.normalize import (
    PROCESSES,
    ROAST_LEVELS,
    canonical_flavors,
    canonical_origin,
    canonical_process,
    canonical_product,
    canonical_roast_level,
    canonical_roaster,
    canonical_variety,
    clean_text,
    find_origin,
    find_process,
    is_blend,
    parse_altitude_m,
)


@pytest.mark.parametrize("raw, expected", [
    ("Colombia", "Colombia"),
    ("Ethiopia, Colombia", "Colombia, Ethiopia"),
    ("Colombia & Ethiopia", "Colombia, Ethiopia"),
    ("Honduras, Colombia, Ethiopia", "Colombia, Ethiopia, Honduras"),
    ("columbia", "Colombia"),
    ("  El  Salvador\n", "El Salvador"),
    ("Mixed", "blend"),
    ("Landrace", None),  # a variety in the origin slot
    ("Caturra, Bourbon", None),
    ("Yunnan", "Yunnan"),  # unknown regions are kept
    ("", None), (None, None), (["Kenya"], None),
])
def test_canonical_origin(raw, expected):
    assert canonical_origin(raw) == expected


def test_blend_and_free_text_origin():
    assert is_blend("Colombia, Ethiopia") and is_blend("blend") and not is_blend("Kenya") and not is_blend(None)
    assert find_origin("Mill City Colombia Regional Select Cauca") == "Colombia"
    assert find_origin("Sweet Maria's Ethiopia Guji + PNG") == "Ethiopia, Papua New Guinea"
    assert find_origin("Colombia Jhoan Vergara Java") == "Colombia"  # Java is a variety here
    assert find_origin("Roaster Scope") is None


@pytest.mark.parametrize("raw, expected", [
    ("Washed", "washed"), ("Dry Washed", "washed"), ("Culture-Innoculated Washed", "washed"),
    ("Natural", "natural"), ("Red Honey", "honey"), ("White Honey", "honey"), ("pulped natural", "honey"),
    ("Anaerobic Natural", "anaerobic natural"), ("Innoculated, Anaerobic Natural", "anaerobic natural"),
    ("Anaerobic Washed, Innoculated", "anaerobic washed"), ("Anaerobic, Washed", "anaerobic washed"),
    ("Washed, Natural", "mixed"), ("Natural, Washed", "mixed"), ("Semi-washed", "wet hulled"),
    ("Swiss Water Decaf", "decaf"), ("Experimental", "experimental"), ("", None),
])
def test_canonical_process(raw, expected):
    assert canonical_process(raw) == expected


def test_find_process_in_free_text():
    assert find_process("SM Costa Rica Yellow Honey Sumava SL-28") == "honey"
    assert find_process("Ethiopia Guji anaerobic natural, 150 g") == "anaerobic natural"
    assert find_process("Brazil unwashed") == "natural"
    assert find_process("Columbia El Mirador Pink Bourbon GCX-8272") is None


@pytest.mark.parametrize("raw, expected", [
    ("Expressive Light", "expressive light"), ("Light", "light"), ("Moderate", "moderate"), ("medium", "moderate"),
    ("Expressive Moderate", "moderate"), ("Expressive Dark", "expressive dark"), ("DARK", "dark"),
    ("Full City+", "expressive dark"), ("city", "light"), ("Vienna", "dark"), ("blonde", "blonde"),
])
def test_canonical_roast_level(raw, expected):
    assert canonical_roast_level(raw) == expected


def test_roaster_product_variety_flavors_altitude():
    assert canonical_roaster("Loring S70 Peregrine\nPRODUCTION ROASTER\n\n\n   Raised") == "Loring S70 Peregrine"
    assert canonical_roaster("\n  Diedrich   CR-35 ") == "Diedrich CR-35"
    assert canonical_product("C\n\n\no\n\n\ns\n\n\nt\n\n\na\n\n\n \n\n\n\n\nR\n\n\ni\n\n\nc\n\n\na", squash_spaces=True) == "CostaRica"
    assert canonical_product("Mill City\nColombia RSC") == "Mill City"
    assert canonical_variety("February '24") is None and canonical_variety("Rotating Microlots") is None
    assert canonical_variety(" SL28,  SL34 ") == "SL28, SL34"
    assert canonical_flavors(["DARK CHOCOLATE", "dark chocolate", " Plum ", 5, ""]) == ("dark chocolate", "plum")
    assert canonical_flavors("cocoa, dates; plum") == ("cocoa", "dates", "plum")
    assert parse_altitude_m("1950 MASL") == 1950.0 and parse_altitude_m(2000) == 2000.0
    assert parse_altitude_m("1,800 - 2,000 m") == 1900.0 and parse_altitude_m("5000 ft") == pytest.approx(1524.0)
    assert parse_altitude_m("high") is None and parse_altitude_m(99999) is None
    assert clean_text(12) == "12" and clean_text(True) is None


def test_canonical_sets_are_fixed_points():
    for level in ROAST_LEVELS:
        assert canonical_roast_level(level) == level
    for process in PROCESSES:
        assert canonical_process(process) == process


_messy = st.text(alphabet=st.characters(codec="ascii") | st.sampled_from("áéíñ,&/\n "), max_size=40)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(_messy)
def test_canonical_forms_are_idempotent(text):
    for fn in (canonical_origin, canonical_process, canonical_roast_level, canonical_variety, canonical_roaster,
               canonical_product, clean_text):
        once = fn(text)
        assert fn(once) == once, fn.__name__
    flavors = canonical_flavors(text.split(","))
    assert canonical_flavors(list(flavors)) == flavors
