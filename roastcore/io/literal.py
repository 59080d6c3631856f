"""Python literals (Artisan .alog files) parsed in linear time and bounded memory.

An .alog is `repr(dict)`. `ast.literal_eval` reads it exactly, but builds a syntax tree first:
about 320x the file size in memory and 2 s per MB, so a 20 MB upload took 6 GB. This parser
reads the same grammar straight from the bytes, one token at a time, with no backtracking:

* dicts, lists, tuples (and parentheses around one value), trailing commas;
* strings in single or double quotes, with an optional u/r prefix, escapes decoded exactly as
  Python does; True, False, None; ints and floats in decimal notation;
* a run of `BULK_MIN` or more plain numbers in a list becomes one float64 array (8 bytes a
  number, parsed by numpy); a list holding only such a run is returned as that array.

Every other Python value (sets, bytes, complex numbers, comments, string concatenation, hex or
underscored numbers) raises `LiteralError`; `parse_literal` then lets `ast.literal_eval` decide,
but only for texts under `LITERAL_EVAL_MAX_BYTES`, so its cost stays small. Limits that no roast
log comes near stop hostile files early: nesting depth, and the number of separate Python
values (strings, containers, numbers outside bulk runs) per byte. Never eval.
"""

from __future__ import annotations

import ast
import codecs
import re
from dataclasses import dataclass

import numpy as np

MAX_DEPTH = 64  # Artisan nests three levels deep
BULK_MIN = 32  # numbers in a run before it becomes a float64 array
LITERAL_EVAL_MAX_BYTES = 64 * 1024  # ~20 MB of syntax tree at most
MIN_VALUE_BUDGET = 50_000  # separate Python values allowed in any file (real logs: < 5,000)
BYTES_PER_VALUE = 16  # ... plus one per this many bytes: at most ~5x the file size in objects
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
_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{0,63}+")
_WORDS = {b"True": True, b"False": False, b"None": None}
_JSON_WORDS = {b"true": True, b"false": False, b"null": None}
_NON_ASCII_OR_ESCAPE = re.compile(r"\\(.)|([^\x00-\x7f])", re.DOTALL)
_OPEN = {ord("{"): "dict", ord("["): "list", ord("("): "tuple"}
_CLOSE = {ord("}"): "dict", ord("]"): "list", ord(")"): "tuple"}
_DIGITS = frozenset(b"0123456789+-.")


class LiteralError(ValueError):
    """Not a literal this parser reads. `offset` is the byte; `definite` means no Python parser
    would accept it either (too deep, too many values), so there is nothing to fall back to."""

    def __init__(self, message: str, offset: int, definite: bool = False):
        super().__init__(f"{message} at byte {offset}")
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
        return literal_eval_small(data, exc)
    if parsed.json_words:
        raise ValueError("true/false/null are JSON, not Python literals")
    return parsed.value


def literal_eval_small(data: bytes, exc: LiteralError):
    """`ast.literal_eval` for what `read_literal` does not read, when the text is small;
    otherwise (or when it fails too) `exc`, whose message says where the problem is."""
    if exc.definite or len(data) > LITERAL_EVAL_MAX_BYTES:
        raise exc
    try:
        return ast.literal_eval(data.decode("utf-8"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise exc from None


class _Bulk:
    """A run of numbers inside a list still being read (an array, not yet a list element)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array


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


def read_literal(data: bytes, max_values: int | None = None) -> Parsed:
    """Parse `data` (UTF-8) or raise LiteralError naming the byte where it stops making sense."""
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
            if c in _CLOSE and phase == "next":
                pass  # handled below with the closers
            else:
                want = "':'" if phase == "colon" else "',' or a closing bracket"
                raise LiteralError(f"expected {want}, found {_show(data, pos)}", pos)

        if c in _CLOSE:
            if top is None or _CLOSE[c] != top.kind or phase in ("colon", "value"):
                raise LiteralError(f"unexpected {_show(data, pos)}", pos)
            if phase in ("key", "item") and (top.commas or top.items):
                python_syntax = True  # a trailing comma
            stack.pop()
            value, used = _close(top, used, budget)
            if top.kind == "tuple":
                python_syntax = True
            pos = _WS.match(data, pos + 1).end()
        elif c in _OPEN:
            if len(stack) >= MAX_DEPTH:
                raise LiteralError(f"nested more than {MAX_DEPTH} levels deep", pos, definite=True)
            used += 1
            if used > budget:
                raise _too_many(budget, pos)
            stack.append(_Frame(_OPEN[c], pos))
            pos = _WS.match(data, pos + 1).end()
            continue
        elif c in _DIGITS:
            if top is not None and top.kind != "dict":
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
            m = _NUMBER.match(data, pos)
            if m is None:
                raise LiteralError(f"unexpected {_show(data, pos)}", pos)
            used += 1
            value = _number(m.group(), pos)
            pos = _WS.match(data, m.end()).end()
        elif c in _STRING or (c in b"uUrR" and pos + 1 < n and data[pos + 1] in _STRING):
            raw = c in b"rR"
            if c not in _STRING:
                python_syntax = True
                pos += 1
            quote = data[pos]
            python_syntax |= quote == 39
            m = _STRING[quote].match(data, pos)
            if m is None:
                raise LiteralError("unterminated string", pos)
            used += 1
            value = _string(data[pos + 1:m.end() - 1], raw, pos)
            pos = _WS.match(data, m.end()).end()
            if pos < n and (data[pos] in _STRING or data[pos] in b"uUrRbBfF"):
                raise LiteralError("adjacent strings (implicit concatenation)", pos)
        else:
            m = _WORD.match(data, pos)
            word = m.group() if m else b""
            if word in _WORDS:
                value, python_syntax = _WORDS[word], True
            elif word in _JSON_WORDS:
                value, json_words = _JSON_WORDS[word], True
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
                try:
                    hash(value)
                except TypeError:
                    raise LiteralError(f"a {type(value).__name__} cannot be a dict key", pos) from None
                top.key, top.phase = value, "colon"
            else:
                top.items[top.key] = value
                top.phase = "next"
        else:
            top.items.append(value)
            top.phase = "next"

    if stack:
        raise LiteralError(f"unexpected end of file: {len(stack)} brackets still open, the innermost", stack[-1].start)
    if not done:
        raise LiteralError("no value", pos)
    return Parsed(result, json_words, python_syntax)


def _close(frame: _Frame, used: int, budget: int) -> tuple[object, int]:
    """The finished container; bulk runs stay one array when nothing else is in the list."""
    items = frame.items
    if frame.kind == "dict":
        return items, used
    if frame.bulk:
        if len(items) == 1:
            return items[0].array, used
        if all(isinstance(x, _Bulk) for x in items):
            return np.concatenate([x.array for x in items]), used
        for x in items:  # mixed with strings etc.: a real list, paid for value by value
            if isinstance(x, _Bulk):
                used += x.array.size
        if used > budget:
            raise _too_many(budget, frame.start)
        items = [v for x in items for v in (x.array.tolist() if isinstance(x, _Bulk) else (x,))]
    if frame.kind == "tuple":
        if len(items) == 1 and frame.commas == 0:
            return items[0], used  # (value): parentheses, not a tuple
        return tuple(items), used
    return items, used


def _bulk_numbers(data: bytes, start: int, end: int, count: int) -> np.ndarray:
    """`count` comma-separated numbers in data[start:end] as float64, parsed slice by slice."""
    out = np.empty(count)
    filled = 0
    while start < end:
        stop = end if end - start <= _BULK_SLICE else data.rfind(b",", start, start + _BULK_SLICE) + 1
        if stop <= start:  # a single huge number cannot happen (digits are bounded); be safe
            stop = end
        part = np.fromstring(data[start:stop].rstrip(b", \t\n\r\f"), dtype=float, sep=",")
        out[filled:filled + part.size] = part
        filled += part.size
        start = stop
    if filled != count:
        raise LiteralError("unreadable number list", start)
    return out


def _number(token: bytes, pos: int) -> int | float:
    try:
        if any(ch in token for ch in b".eE"):
            return float(token)
        return int(token)
    except ValueError:
        raise LiteralError("number too long", pos) from None


def _string(body: bytes, raw: bool, pos: int) -> str:
    """The text of a string literal's body, escapes decoded exactly as the Python compiler does."""
    if raw or 92 not in body:  # no backslash
        return body.decode("utf-8")
    try:
        if body.isascii():
            return codecs.unicode_escape_decode(body)[0]
        # The compiler's rule: non-ASCII characters are written as \U escapes first, and a
        # backslash right before one stays a backslash.
        text = body.decode("utf-8")
        ascii_text = _NON_ASCII_OR_ESCAPE.sub(_escape_for_decoder, text)
        return codecs.unicode_escape_decode(ascii_text.encode("ascii"))[0]
    except UnicodeDecodeError as exc:
        raise LiteralError(f"bad escape in string ({exc.reason})", pos) from None


def _escape_for_decoder(m: re.Match) -> str:
    if m.group(2) is not None:
        return f"\\U{ord(m.group(2)):08x}"
    after = m.group(1)
    if after.isascii():
        return m.group(0)
    return f"\\u005c\\U{ord(after):08x}"


def _too_many(budget: int, pos: int) -> LiteralError:
    return LiteralError(f"more than {budget:,} separate values (lists, strings, numbers outside long "
                        "number lists): not a roast log", pos, definite=True)


def _show(data: bytes, pos: int) -> str:
    """A short quoted token for messages: the word, number or character at `pos`."""
    m = _WORD.match(data, pos) or _NUMBER.match(data, pos)
    token = m.group() if m else data[pos:pos + 1]
    if len(token) > 24:
        token = token[:24] + b"..."
    kind = "name " if _WORD.match(data, pos) else ""
    return kind + repr(token.decode("utf-8", "replace"))
