"""The new-coffee form's logic: the choices a run offers and the roast its values request.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. The form's widgets are on
the Compare curves page; generation itself is generate.generate_profile.
"""

from __future__ import annotations

from collections.abc import Mapping

from roastcore.generate import RoastRequest, generate_profile
from roastcore.inspect_run import request_choices
from roastcore.profile import Profile

UNKNOWN = "(unknown)"
# (widget label, request field), in the form's order
FIELD_LABELS = (("Origin", "origin"), ("Process", "process"), ("Variety", "variety"),
                ("Roast level", "roast_level"), ("Roaster", "roaster"))
BY_LENGTH, BY_DROP = "Length", "Drop temperature"


def field_options(source) -> dict[str, list[str]]:
    """Selectbox options per request field: UNKNOWN first, then the run's vocabulary (`source`:
    a loaded run or its encoder, as inspect_run.request_choices)."""
    vocabs = request_choices(source).vocabs
    return {f: [UNKNOWN] + vocabs.get(f, []) for _, f in FIELD_LABELS}


def roast_request(values: Mapping) -> RoastRequest:
    """The form's values -> a RoastRequest. `values`: the fields of FIELD_LABELS (UNKNOWN for
    none), flavors, charge_f, by (BY_LENGTH or BY_DROP), length_s, drop_f."""
    fields = {f: (None if values.get(f) in (None, UNKNOWN) else values[f]) for _, f in FIELD_LABELS}
    by_length = values.get("by", BY_LENGTH) == BY_LENGTH
    return RoastRequest(**fields, flavors=tuple(values.get("flavors") or ()),
                        charge_temp_f=float(values["charge_f"]),
                        duration_s=float(values["length_s"]) if by_length else None,
                        drop_temp_f=float(values["drop_f"]) if not by_length else None)


def new_coffee_profile(loaded, values: Mapping) -> Profile:
    """generate.generate_profile for the form's values with the loaded run's model."""
    return generate_profile(loaded.model, roast_request(values))
