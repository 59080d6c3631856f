"""Canonical spellings for roast metadata, shared by every importer.

Real metadata is messy (scraped pages with newline junk, free-text Artisan "beans" fields, many
spellings of one process). The feature encoder treats each distinct string as its own
category, so every importer funnels text through these functions. Each is idempotent
(canonical in, same canonical out) and returns None for values that carry no information.

Vocabularies follow the built-in dataset (simulate.py, lower-cased) so real and synthetic
profiles share categories: roast levels use Onyx's five-step scale, processes the list below.

Text from files can be megabytes long, so every pattern here runs in linear time (no pattern
that can backtrack over a run of spaces), nothing splits a whole field into a list, and free
text is searched in its first MAX_FREE_TEXT characters only.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

# ------------------------------------------------------------------ generic text
_WS = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")
_LINE_END = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")  # str.splitlines()'s line ends
MAX_FREE_TEXT = 4096  # an Artisan title or beans field names its origin early
MAX_FLAVORS = 32


def clean_text(value, max_len: int = 200) -> str | None:
    """Trimmed single-line text (NFC, whitespace collapsed); None when empty or not text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = f"{value:g}" if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return None
    text = _WS.sub(" ", unicodedata.normalize("NFC", value)).strip()
    return text[:max_len] or None


def first_line(value, max_len: int = 200) -> str | None:
    """The first non-empty line, cleaned: machine names arrive with page junk after a newline."""
    if not isinstance(value, str):
        return clean_text(value, max_len)
    first = _NON_SPACE.search(value)  # the line holding it is the first non-blank one
    if first is None:
        return None
    end = _LINE_END.search(value, first.start())
    return clean_text(value[first.start():len(value) if end is None else end.start()], max_len)


# ------------------------------------------------------------------ origin
COUNTRIES = (
    "Bolivia", "Brazil", "Burundi", "Cameroon", "China", "Colombia", "Congo", "Costa Rica", "Cuba",
    "Dominican Republic", "Ecuador", "El Salvador", "Ethiopia", "Guatemala", "Haiti", "Hawaii",
    "Honduras", "India", "Indonesia", "Jamaica", "Kenya", "Laos", "Madagascar", "Malawi", "Mexico",
    "Myanmar", "Nepal", "Nicaragua", "Panama", "Papua New Guinea", "Peru", "Philippines",
    "Puerto Rico", "Rwanda", "Sri Lanka", "Taiwan", "Tanzania", "Thailand", "Timor-Leste", "Uganda",
    "Venezuela", "Vietnam", "Yemen", "Zambia", "Zimbabwe",
)
# Misspellings, adjectives and unambiguous growing regions -> country. ("Java" is left out: it
# is also a variety, as in "Colombia Jhoan Vergara Java".)
_ORIGIN_ALIASES = {
    "columbia": "Colombia", "colombian": "Colombia", "columbian": "Colombia",
    "ethiopian": "Ethiopia", "ethiopa": "Ethiopia", "yirgacheffe": "Ethiopia", "yirgachefe": "Ethiopia",
    "sidamo": "Ethiopia", "sidama": "Ethiopia", "guji": "Ethiopia", "harrar": "Ethiopia", "harar": "Ethiopia",
    "kenyan": "Kenya", "brasil": "Brazil", "brazilian": "Brazil", "guatamala": "Guatemala",
    "guatmala": "Guatemala", "guatemalan": "Guatemala", "sumatra": "Indonesia", "sulawesi": "Indonesia",
    "sumatran": "Indonesia", "kona": "Hawaii", "png": "Papua New Guinea", "east timor": "Timor-Leste",
    "drc": "Congo", "dr congo": "Congo", "mexican": "Mexico", "peruvian": "Peru",
    "salvador": "El Salvador", "costarica": "Costa Rica", "rwandan": "Rwanda", "burundian": "Burundi",
}
_COUNTRY_BY_KEY = {c.lower(): c for c in COUNTRIES} | _ORIGIN_ALIASES
_BLEND_WORDS = {"mixed", "blend", "various", "multiple", "multi-origin", "multiorigin"}
BLEND = "blend"

# Varieties that scrapers and users put in the origin field by mistake.
VARIETIES = {
    "landrace", "heirloom", "gesha", "geisha", "caturra", "catuai", "bourbon", "pink bourbon",
    "red bourbon", "yellow bourbon", "typica", "typica mejorado", "pacamara", "pacas", "sl28", "sl34",
    "ruiru 11", "batian", "castillo", "catimor", "sarchimor", "sarchimore", "sidra", "mundo novo",
    "maragogipe", "villa sarchi", "parainema", "74110", "74112", "wush wush", "mokka", "laurina",
    "java", "field blend", "abbysinia", "abyssinia", "yellow catuai", "red catuai",
}
_ORIGIN_SPLIT = re.compile(r"[,/&;+]|\band\b", re.IGNORECASE)  # parts are stripped after
_ORIGIN_FIND = re.compile(
    r"\b(" + "|".join(sorted((re.escape(k) for k in _COUNTRY_BY_KEY), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def canonical_origin(value) -> str | None:
    """A structured origin field -> canonical countries, sorted and comma-joined.

    "Ethiopia, Colombia" and "Colombia & Ethiopia" both become "Colombia, Ethiopia" (a blend;
    see `is_blend`). "Mixed"/"Blend" alone become "blend". Variety names in the origin field
    (a known scraper slip) are dropped. Unknown words are kept, title-cased, as regions may be
    real origins this list lacks.
    """
    text = clean_text(value)
    if text is None:
        return None
    parts, blend = [], False
    for token in _ORIGIN_SPLIT.split(text):
        token = token.strip()
        key = token.strip(" .").lower()
        if not key:
            continue
        if key in _COUNTRY_BY_KEY:
            parts.append(_COUNTRY_BY_KEY[key])
        elif key in _BLEND_WORDS:
            blend = True
        elif key in VARIETIES:
            continue
        else:
            token = token.strip(" .")
            parts.append(token.title() if token == key else token)  # keep deliberate casing
    if parts:
        return ", ".join(sorted(set(parts)))
    return BLEND if blend else None


def find_origin(text) -> str | None:
    """Countries mentioned in free text (an Artisan title or beans field), canonical form."""
    if not isinstance(text, str):
        return None
    found = {_COUNTRY_BY_KEY[m.group(1).lower()] for m in _ORIGIN_FIND.finditer(text[:MAX_FREE_TEXT])}
    return ", ".join(sorted(found)) or None


def is_blend(origin: str | None) -> bool:
    """True for a canonical origin naming several countries or "blend"."""
    return origin is not None and (origin == BLEND or ", " in origin)


# ------------------------------------------------------------------ process
PROCESSES = ("washed", "natural", "honey", "anaerobic washed", "anaerobic natural", "anaerobic honey",
             "anaerobic", "wet hulled", "decaf", "mixed")
_PROCESS_BASES = (
    # (canonical base, words that mean it), checked in this order on lower-cased text
    ("wet hulled", ("wet hulled", "wet-hulled", "giling basah", "semi-washed", "semi washed")),
    ("honey", ("honey", "pulped natural", "pulped-natural", "miel")),
    ("natural", ("natural", "dry process", "dry-process", "sun dried", "sun-dried", "unwashed")),
    ("washed", ("washed", "wet process", "wet-process", "fully washed", "lavado")),
    ("decaf", ("decaf", "swiss water", "sugarcane", "mountain water", "ethyl acetate")),
)
_ANAEROBIC = ("anaerobic", "carbonic maceration", "anoxic")


_PROCESS_SPLIT = re.compile(r"[,/&;+]|\sand\s")  # on clean text (single spaces); parts are stripped


def _process_of(text: str) -> tuple[str | None, bool]:
    """(base process, anaerobic?) of one phrase."""
    anaerobic = any(w in text for w in _ANAEROBIC)
    for base, words in _PROCESS_BASES:
        if any(w in text for w in words):
            return base, anaerobic
    return None, anaerobic


def canonical_process(value) -> str | None:
    """One of PROCESSES where the text allows, else the cleaned lower-case text.

    Qualifiers are dropped ("Culture-Innoculated Washed" -> "washed", "Red Honey" -> "honey",
    "Anaerobic Washed, Innoculated" -> "anaerobic washed"); two different processes in one
    coffee ("Washed, Natural") -> "mixed". "Dry Washed" is a washed coffee dried on beds.
    """
    text = clean_text(value)
    if text is None:
        return None
    low = text.lower()
    if low in PROCESSES:
        return low
    results = set()
    for phrase in _PROCESS_SPLIT.split(low):
        phrase = phrase.strip()
        if not phrase:
            continue
        base, anaerobic = _process_of(phrase)
        if base in ("washed", "natural", "honey") and anaerobic:
            results.add(f"anaerobic {base}")
        elif base is not None:
            results.add(base)
        elif anaerobic:
            results.add("anaerobic")
    # a bare qualifier phrase ("Innoculated") adds nothing; "anaerobic" + "washed" is one process
    if "anaerobic" in results and len(results) > 1:
        results.discard("anaerobic")
        if len(results) == 1 and (only := next(iter(results))) in ("washed", "natural", "honey"):
            results = {f"anaerobic {only}"}
    if len(results) == 1:
        return results.pop()
    if len(results) > 1:
        return "mixed"
    return low


def find_process(text) -> str | None:
    """A canonical process named in free text (an Artisan beans field), or None."""
    if not isinstance(text, str):
        return None
    base, anaerobic = _process_of(text[:MAX_FREE_TEXT].lower())
    if base in ("washed", "natural", "honey") and anaerobic:
        return f"anaerobic {base}"
    return base or ("anaerobic" if anaerobic else None)


# ------------------------------------------------------------------ roast level
ROAST_LEVELS = ("expressive light", "light", "moderate", "expressive dark", "dark")
_ROAST_LEVEL_ALIASES = {
    # Onyx's own words first, then the usual trade names mapped onto Onyx's scale.
    "expressive moderate": "moderate", "medium": "moderate", "medium roast": "moderate",
    "light roast": "light", "dark roast": "dark",
    "ultra light": "expressive light", "extra light": "expressive light", "nordic": "expressive light",
    "cinnamon": "expressive light", "new england": "expressive light", "filter": "light",
    "light-medium": "light", "medium-light": "light", "medium light": "light", "city": "light",
    "city+": "moderate", "city plus": "moderate", "omni": "moderate",
    "medium-dark": "expressive dark", "medium dark": "expressive dark", "full city": "expressive dark",
    "full city+": "expressive dark", "full city plus": "expressive dark", "espresso": "expressive dark",
    "vienna": "dark", "french": "dark", "italian": "dark", "spanish": "dark",
}


def canonical_roast_level(value) -> str | None:
    """Lower-case level on the scale ROAST_LEVELS, else the cleaned lower-case text."""
    text = clean_text(value)
    if text is None:
        return None
    low = clean_text(text.lower().replace("_", " "))
    if low is None or low in ROAST_LEVELS:
        return low
    return _ROAST_LEVEL_ALIASES.get(low, low)


# ------------------------------------------------------------------ variety, roaster, product
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_NOT_A_VARIETY = re.compile(r"^(?:(?:" + "|".join(_MONTHS) + r")\b.*+|rotating microlots?|various|n/?a|unknown|-++)$",
                            re.IGNORECASE)


def canonical_variety(value) -> str | None:
    """Cleaned variety text; harvest months and "Rotating Microlots" (shifted fields) -> None."""
    text = clean_text(value)
    if text is None or _NOT_A_VARIETY.match(text):
        return None
    return text


def canonical_roaster(value) -> str | None:
    """Machine name: first non-empty line, whitespace collapsed.

    "Loring S70 Peregrine\\nPRODUCTION ROASTER\\n\\n   Raised" -> "Loring S70 Peregrine".
    """
    return first_line(value, max_len=80)


def canonical_product(value, squash_spaces: bool = False) -> str | None:
    """Product (grouping key). `squash_spaces` removes all whitespace, for sources whose clean
    names have none (Onyx's "CostaRicaLasLajasNatural" vs its letter-spaced page junk)."""
    if not isinstance(value, str):
        return clean_text(value)
    if squash_spaces:
        text = _WS.sub("", unicodedata.normalize("NFC", value))
        return text[:200] or None
    return first_line(value)


def canonical_flavors(values) -> tuple[str, ...]:
    """Lower-case, trimmed, de-duplicated flavour notes in their original order (at most
    MAX_FLAVORS, from the first 8 * MAX_FLAVORS entries). A string is split at ',' and ';'."""
    if isinstance(values, str):
        values = (m.group() for m in _FLAVOR_PART.finditer(values))  # lazily: no list of a megabyte
    elif not isinstance(values, (list, tuple)):
        return ()
    out: list[str] = []
    for v in itertools.islice(values, 8 * MAX_FLAVORS):
        text = clean_text(v, max_len=60) if isinstance(v, str) else None
        if text and text.lower() not in out:
            out.append(text.lower())
            if len(out) == MAX_FLAVORS:
                break
    return tuple(out)


_FLAVOR_PART = re.compile(r"[^,;]+")


_ALTITUDE = re.compile(r"(\d[\d,.]{0,15}+)(?:\s*+(?:-|–|to)\s*+(\d[\d,.]{0,15}+))?+\s*+(ft|feet|m|masl|meters?)?",
                       re.IGNORECASE)


def parse_altitude_m(value) -> float | None:
    """Metres above sea level from 1950, "1950 MASL", "1,800-2,000 m" (midpoint) or "6000 ft"."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        metres = float(value)
    elif isinstance(value, str):
        m = _ALTITUDE.search(value[:MAX_FREE_TEXT])
        if not m:
            return None
        try:
            lo = float(m.group(1).replace(",", ""))
            hi = float(m.group(2).replace(",", "")) if m.group(2) else lo
        except ValueError:
            return None
        metres = (lo + hi) / 2
        if (m.group(3) or "").lower() in ("ft", "feet"):
            metres *= 0.3048
    else:
        return None
    return metres if 0 < metres <= 4000 else None
