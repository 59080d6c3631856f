"""Python literals (Artisan .alog) and JSON, parsed in linear time and bounded memory.

An .alog is `repr(dict)`. `ast.literal_eval` reads it exactly, but builds a syntax tree first:
about 320x the file size in memory and 2 s per MB, so a 20 MB upload took 6 GB. `json.loads`
is lighter but still builds a Python object for every value: ~20x the text for `[[],[],...]`.
This parser reads both grammars straight from the bytes, one token at a time, with no
backtracking, and keeps the big parts compact:

* a run of `BULK_MIN` or more plain numbers in a list becomes one float64 array (8 bytes a
  number, parsed by numpy); a list holding only such a run is returned as that array;
* in JSON, a list of `{"time": t, "value": v}` points (Onyx curves) is returned as an (n, 2)
  float64 array (16 bytes a point instead of ~250);
* every other value (string, container, number outside a run) is a Python object, and there
  may be at most max(MIN_VALUE_BUDGET, size / BYTES_PER_VALUE) of them alive, which caps
  their memory at a few times the file size; nesting is capped at MAX_DEPTH.

Python mode reads dicts, lists, tuples (and parentheses around one value), trailing commas,
strings in single or double quotes with an optional u/r prefix (escapes decoded exactly as
Python does), True, False, None, and decimal ints and floats; JSON's true/false/null are
read too but flagged (`Parsed.json_words`), since Python refuses them. JSON mode reads JSON
(plus NaN/Infinity, as Python's json module does). Anything else raises `LiteralError`;
`parse_literal` then lets `ast.literal_eval` decide, only for texts under
`FALLBACK_MAX_BYTES`, so its cost stays small. Never eval.
"""

from __future__ import annotations

import ast
import codecs
import json
import re
from array import array
from dataclasses import dataclass

import numpy as np

MAX_DEPTH = 64  # Artisan nests three levels deep, Onyx four
BULK_MIN = 32  # numbers in a run before it becomes a float64 array
FALLBACK_MAX_BYTES = 64 * 1024  # ast.literal_eval builds ~20 MB of syntax tree for this much
MIN_VALUE_BUDGET = 20_000  # Python values any file may hold (real Artisan logs: <= 1,218)
BYTES_PER_VALUE = 16  # ... plus one per this many bytes: ~60 bytes of objects per 16 of text
_BULK_SLICE = 1 << 16  # bytes numpy parses at a time, so temporaries stay small

_WS = re.compile(rb"[ \t\n\r\f]*+")
# Possessive quantifiers and bounded digit counts: no backtracking, and strtod never sees a
# megabyte of digits. A number may not run into a letter, digit, '_' or '.' (0x1F, 1_0, 1j, 1.2.3).
_NUM = rb"[-+]?(?:\d{1,100}+(?:\.\d{0,100}+)?+|\.\d{1,100}+)(?:[eE][-+]?\d{1,4}+)?+(?![\w.])"
_NUMBER = re.compile(_NUM)
_RUN = re.compile(_NUM + rb"(?:[ \t\n\r\f]*+,[ \t\n\r\f]*+" + _NUM + rb")*+")
_STRING = {
    ord("'"): re.compile(rb"'[^'\\\n\r]*+(?:\\(?s:.)[^'\\\n\r]*+)*+'"),
    ord('"'): re.compile(rb'"[^"\\\n\r]*+(?:\\(?s:.)[^"\\\n\r]*+)*+"'),
}
_J = rb"[ \t\n\r]*+"
_POINT = (rb'\{' + _J + rb'"time"' + _J + b":" + _J + _NUM + _J + b"," + _J + rb'"value"' + _J + b":" + _J + _NUM
          + _J + rb"\}")
_POINT_RUN = re.compile(_POINT + rb"(?:" + _J + b"," + _J + _POINT + rb")*+")  # Onyx curves, read in bulk
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{0,63}+")
_PYTHON_WORDS = {b"True": True, b"False": False, b"None": None}
_JSON_WORDS = {b"true": True, b"false": False, b"null": None}
_JSON_NUMBER_WORDS = {b"NaN": float("nan"), b"Infinity": float("inf")}
_NON_ASCII_OR_ESCAPE = re.compile(r"\\(.)|([^\x00-\x7f])", re.DOTALL)
_OPEN = {ord("{"): "dict", ord("["): "list", ord("("): "tuple"}
_CLOSE = {ord("}"): "dict", ord("]"): "list", ord(")"): "tuple"}
_DIGITS = frozenset(b"0123456789+-.")


class LiteralError(ValueError):
    """Not a text this parser reads. `offset` is the byte, `message` the problem; `definite`
    means no other parser would accept it either (too deep, too many values)."""

    def __init__(self, message: str, offset: int, definite: bool = False):
        super().__init__(f"{message} at byte {offset}")
        self.message = message
        self.offset = offset
        self.definite = definite


@dataclass
class Parsed:
    value: object
    json_words: bool  # true/false/null were read: JSON syntax, which Python refuses
    python_syntax: bool  # single quotes, tuples, True/False/None, prefixes or trailing commas


def parse_literal(text: str | bytes):
    """The value of a Python literal, like `ast.literal_eval` (long numeric lists as arrays).

    Raises ValueError/SyntaxError for what is not a literal, JSON's true/false/null included.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    try:
        parsed = read_literal(data)
    except LiteralError as exc:
        return fallback_small(data, exc, ast.literal_eval)
    if parsed.json_words:
        raise ValueError("true/false/null are JSON, not Python literals")
    return parsed.value


def parse_json(data: bytes):
    """The value of a JSON text, like `json.loads` (long numeric lists and lists of
    {time, value} points as arrays). Raises LiteralError."""
    try:
        return read_literal(data, json_mode=True).value
    except LiteralError as exc:
        return fallback_small(data, exc, json.loads)


def fallback_small(data: bytes, exc: LiteralError, parse):
    """`parse` (ast.literal_eval or json.loads) for what `read_literal` does not read, when the
    text is small; otherwise (or when it fails too) `exc`, which says where the problem is."""
    if exc.definite or len(data) > FALLBACK_MAX_BYTES:
        raise exc
    try:
        return parse(data.decode("utf-8"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise exc from None


class _Bulk:
    """A run of numbers inside a list being read (an array, not yet list elements)."""

    __slots__ = ("array",)

    def __init__(self, values: np.ndarray):
        self.array = values


class _Points:
    """{time, value} points inside a list being read, as pairs of doubles."""

    __slots__ = ("pairs",)

    def __init__(self):
        self.pairs = array("d")


class _Frame:
    __slots__ = ("kind", "items", "phase", "key", "commas", "bulk", "start")

    def __init__(self, kind: str, start: int):
        self.kind = kind
        self.items: list | dict = {} if kind == "dict" else []
        self.phase = "key" if kind == "dict" else "item"  # key/colon/value/next or item/next
        self.key = None
        self.commas = 0
        self.bulk = False
        self.start = start


def read_literal(data: bytes, max_values: int | None = None, json_mode: bool = False) -> Parsed:
    """Parse `data` (UTF-8), a Python literal or (json_mode) JSON, or raise LiteralError naming
    the byte where it stops making sense."""
    n = len(data)
    budget = max(MIN_VALUE_BUDGET, n // BYTES_PER_VALUE) if max_values is None else max_values
    used = 0
    stack: list[_Frame] = []
    json_words = python_syntax = False
    result, done = None, False
    pos = _WS.match(data, 0).end()

    while pos < n:
        c = data[pos]
        top = stack[-1] if stack else None
        phase = "item" if top is None else top.phase
        if done:
            raise LiteralError(f"unexpected {_show(data, pos)} after the end of the value", pos)
        if phase == "next" or phase == "colon":
            if c == 44 and phase == "next":  # ','
                top.commas += 1
                top.phase = "key" if top.kind == "dict" else "item"
                pos = _WS.match(data, pos + 1).end()
                continue
            if c == 58 and phase == "colon":  # ':'
                top.phase = "value"
                pos = _WS.match(data, pos + 1).end()
                continue
            if not (c in _CLOSE and phase == "next"):
                want = "':'" if phase == "colon" else "',' or a closing bracket"
                raise LiteralError(f"expected {want}, found {_show(data, pos)}", pos)

        if c in _CLOSE:
            if top is None or _CLOSE[c] != top.kind or phase in ("colon", "value"):
                raise LiteralError(f"unexpected {_show(data, pos)}", pos)
            if phase in ("key", "item") and (top.commas or top.items):
                if json_mode:
                    raise LiteralError("trailing comma", pos)
                python_syntax = True
            stack.pop()
            value, used = _close(top, used, budget)
            python_syntax |= top.kind == "tuple"
            pos = _WS.match(data, pos + 1).end()
        elif c == 123 and json_mode and top is not None and top.kind == "list" and (
                point_run := _POINT_RUN.match(data, pos)):
            if not (top.items and isinstance(top.items[-1], _Points)):
                top.items.append(_Points())
            count = _point_numbers(data, pos, point_run.end(), top.items[-1].pairs)
            top.commas += count - 1
            top.phase = "next"
            pos = _WS.match(data, point_run.end()).end()
            continue
        elif c in _OPEN:
            if len(stack) >= MAX_DEPTH:
                raise LiteralError(f"nested more than {MAX_DEPTH} levels deep", pos, definite=True)
            if json_mode and c == 40:
                raise LiteralError("unexpected '('", pos)
            used += 1
            if used > budget:
                raise _too_many(budget, pos)
            stack.append(_Frame(_OPEN[c], pos))
            pos = _WS.match(data, pos + 1).end()
            continue
        elif c in _DIGITS:
            if json_mode and data.startswith(b"-Infinity", pos):
                value, pos = float("-inf"), _WS.match(data, pos + 9).end()
                used += 1
            elif top is not None and top.kind != "dict":
                m = _RUN.match(data, pos)
                if m is None:
                    raise LiteralError(f"unexpected {_show(data, pos)}", pos)
                count = data.count(b",", pos, m.end()) + 1
                top.commas += count - 1
                if top.bulk or count >= BULK_MIN:
                    top.bulk = True
                    top.items.append(_Bulk(_bulk_numbers(data, pos, m.end(), count)))
                else:
                    used += count
                    if used > budget:
                        raise _too_many(budget, pos)
                    top.items.extend(_number(token.strip(), pos) for token in data[pos:m.end()].split(b","))
                top.phase = "next"
                pos = _WS.match(data, m.end()).end()
                continue
            else:
                m = _NUMBER.match(data, pos)
                if m is None:
                    raise LiteralError(f"unexpected {_show(data, pos)}", pos)
                used += 1
                value = _number(m.group(), pos)
                pos = _WS.match(data, m.end()).end()
        elif c in _STRING or (c in b"uUrR" and pos + 1 < n and data[pos + 1] in _STRING and not json_mode):
            raw = c in b"rR"
            if c not in _STRING:
                python_syntax = True
                pos += 1
            quote = data[pos]
            if quote == 39:
                if json_mode:
                    raise LiteralError("unexpected \"'\" (JSON strings use double quotes)", pos)
                python_syntax = True
            m = _STRING[quote].match(data, pos)
            if m is None:
                raise LiteralError("unterminated string", pos)
            used += 1
            value = _string(data, pos, m.end(), raw, json_mode)
            pos = _WS.match(data, m.end()).end()
            if pos < n and data[pos] in _STRING:
                raise LiteralError("adjacent strings (implicit concatenation)", pos)
        else:
            m = _WORD.match(data, pos)
            word = m.group() if m else b""
            if word in _JSON_WORDS:
                value, json_words = _JSON_WORDS[word], True
            elif word in _PYTHON_WORDS and not json_mode:
                value, python_syntax = _PYTHON_WORDS[word], True
            elif word in _JSON_NUMBER_WORDS and json_mode:
                value = _JSON_NUMBER_WORDS[word]
            else:
                raise LiteralError(f"unexpected {_show(data, pos)}", pos)
            used += 1
            pos = _WS.match(data, m.end()).end()

        if used > budget:
            raise _too_many(budget, pos)
        # a complete value: hand it to the enclosing container (or it is the result)
        if not stack:
            result, done = value, True
            continue
        top = stack[-1]
        if top.kind == "dict":
            if top.phase == "key":
                if json_mode and not isinstance(value, str):
                    raise LiteralError("JSON object keys must be strings", pos)
                try:
                    hash(value)
                except TypeError:
                    raise LiteralError(f"a {type(value).__name__} cannot be a dict key", pos) from None
                top.key, top.phase = value, "colon"
            else:
                top.items[top.key] = value
                top.phase = "next"
        else:
            top.phase = "next"
            if json_mode and type(value) is dict and _is_point(value):
                if not (top.items and isinstance(top.items[-1], _Points)):
                    top.items.append(_Points())
                top.items[-1].pairs.extend((value["time"], value["value"]))
                used -= 5  # the dict, its keys and values are gone
            else:
                top.items.append(value)

    if stack:
        raise LiteralError(f"unexpected end of file: {len(stack)} brackets still open, the innermost", stack[-1].start)
    if not done:
        raise LiteralError("no value", pos)
    return Parsed(result, json_words, python_syntax)


def _is_point(value: dict) -> bool:
    """{"time": number, "value": number}: kept as two doubles (numbers here have <= 100 digits)."""
    return len(value) == 2 and type(value.get("time")) in (int, float) and type(value.get("value")) in (int, float)


def _close(frame: _Frame, used: int, budget: int) -> tuple[object, int]:
    """The finished container; a list of only one compact run stays that array."""
    items = frame.items
    if frame.kind == "dict":
        return items, used
    compact = [x for x in items if isinstance(x, (_Bulk, _Points))]
    if compact:
        if len(items) == 1:
            x = items[0]
            return (x.array if isinstance(x, _Bulk) else np.frombuffer(x.pairs, dtype=float).reshape(-1, 2)), used
        if all(isinstance(x, _Bulk) for x in items):
            return np.concatenate([x.array for x in items]), used
        for x in compact:  # mixed with other values: a real list, paid for value by value
            used += x.array.size if isinstance(x, _Bulk) else len(x.pairs) // 2 * 3  # a dict, two numbers
        if used > budget:
            raise _too_many(budget, frame.start)
        items = [v for x in items for v in _expand(x)]
    if frame.kind == "tuple":
        if len(items) == 1 and frame.commas == 0:
            return items[0], used  # (value): parentheses, not a tuple
        return tuple(items), used
    return items, used


def _expand(item) -> list:
    if isinstance(item, _Bulk):
        return item.array.tolist()
    if isinstance(item, _Points):
        pairs = item.pairs
        return [{"time": pairs[i], "value": pairs[i + 1]} for i in range(0, len(pairs), 2)]
    return [item]


def _bulk_numbers(data: bytes, start: int, end: int, count: int) -> np.ndarray:
    """`count` comma-separated numbers in data[start:end] as float64, parsed slice by slice."""
    out = np.empty(count)
    filled = 0
    while start < end:
        stop = end if end - start <= _BULK_SLICE else data.rfind(b",", start, start + _BULK_SLICE) + 1
        if stop <= start:  # cannot happen (a number is at most ~210 bytes); be safe
            stop = end
        part = np.fromstring(data[start:stop].rstrip(b", \t\n\r\f"), dtype=float, sep=",")
        out[filled:filled + part.size] = part
        filled += part.size
        start = stop
    if filled != count:
        raise LiteralError("unreadable number list", start)
    return out


def _point_numbers(data: bytes, start: int, end: int, pairs: array) -> int:
    """Append the (time, value) numbers of the points in data[start:end] to `pairs`; their count."""
    count = 0
    while start < end:
        stop = end if end - start <= _BULK_SLICE else data.rfind(b"}", start, start + _BULK_SLICE) + 1
        if stop <= start:  # cannot happen (a point is at most ~450 bytes); be safe
            stop = end
        # what is left without the braces, keys and colons is a plain number list
        plain = data[start:stop].replace(b'"time"', b"").replace(b'"value"', b"").translate(None, b"{}:")
        numbers = np.fromstring(plain.strip(b", \t\n\r"), dtype=float, sep=",")
        if numbers.size != 2 * data.count(b"{", start, stop):
            raise LiteralError("unreadable point list", start)
        pairs.frombytes(numbers.tobytes())
        count += numbers.size // 2
        start = stop
    return count


def _number(token: bytes, pos: int) -> int | float:
    try:
        if b"." in token or b"e" in token or b"E" in token:
            return float(token)
        return int(token)
    except ValueError:
        raise LiteralError("number too long", pos) from None


def _string(data: bytes, start: int, end: int, raw: bool, json_mode: bool) -> str:
    """The text of the string literal data[start:end] (quotes included), decoded exactly as the
    Python compiler (or json) does."""
    body = data[start + 1:end - 1]
    if raw or 92 not in body:  # no backslash
        return body.decode("utf-8")
    try:
        if json_mode:
            return json.loads(data[start:end])
        if body.isascii():
            return _unicode_escape(body)
        # The compiler's rule: non-ASCII characters are written as \U escapes first, and a
        # backslash right before one stays a backslash.
        text = body.decode("utf-8")
        ascii_text = _NON_ASCII_OR_ESCAPE.sub(_escape_for_decoder, text)
        return _unicode_escape(ascii_text.encode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else "invalid escape"
        raise LiteralError(f"bad escape in string ({reason})", start) from None


_ANY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_KNOWN_ESCAPES = frozenset(b"\n\\'\"abfnrtv01234567xNuU")


def _unicode_escape(body: bytes) -> str:
    """The compiler's decoding of an ASCII string body. An unknown escape (\\h) stays as written,
    as the compiler keeps it; written out as an escaped backslash first, so that the decoder
    does not warn (a roast log's notes are not code to be warned about)."""
    body = _ANY_ESCAPE.sub(lambda m: m.group(0) if m.group(1)[0] in _KNOWN_ESCAPES else b"\\\\" + m.group(1), body)
    return codecs.unicode_escape_decode(body)[0]


def _escape_for_decoder(m: re.Match) -> str:
    if m.group(2) is not None:
        return f"\\U{ord(m.group(2)):08x}"
    after = m.group(1)
    if after.isascii():
        return m.group(0)
    return f"\\u005c\\U{ord(after):08x}"


def _too_many(budget: int, pos: int) -> LiteralError:
    return LiteralError(f"more than {budget:,} separate values (lists, strings, numbers outside long "
                        "number lists): not a roast file", pos, definite=True)


def _show(data: bytes, pos: int) -> str:
    """A short quoted token for messages: the word, number or character at `pos`."""
    word = _WORD.match(data, pos)
    m = word or _NUMBER.match(data, pos)
    token = m.group() if m else data[pos:pos + 1]
    if len(token) > 24:
        token = token[:24] + b"..."
    return ("name " if word else "") + repr(token.decode("utf-8", "replace"))
