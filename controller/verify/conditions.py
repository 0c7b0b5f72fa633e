"""Three-valued building blocks for iam_eval: wildcards, policy variables, condition operators.

Every test answers True, False or Unknown(reason). Unknown means "this evaluator cannot tell from
the request context it was given", so that a caller never mistakes a guess for an allow. Pure: no
AWS client, no clock, no environment.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Callable, Iterable, Mapping, Union


@dataclass(frozen=True)
class Unknown:
    reason: str


Truth = Union[bool, Unknown]
ContextValue = Union[str, tuple[str, ...]]
# A pattern after policy-variable substitution: (text, literal). Literal text came from a
# variable (or ${*}, ${?}, ${$}) and never acts as a wildcard.
Piece = tuple[str, bool]


def all3(values: Iterable[Truth]) -> Truth:
    """Kleene AND: any False wins, then the first Unknown, else True."""
    unknown: Unknown | None = None
    for value in values:
        if value is False:
            return False
        if isinstance(value, Unknown) and unknown is None:
            unknown = value
    return unknown if unknown is not None else True


def any3(values: Iterable[Truth]) -> Truth:
    """Kleene OR: any True wins, then the first Unknown, else False."""
    unknown: Unknown | None = None
    for value in values:
        if value is True:
            return True
        if isinstance(value, Unknown) and unknown is None:
            unknown = value
    return unknown if unknown is not None else False


def not3(value: Truth) -> Truth:
    return value if isinstance(value, Unknown) else not value


def scalar(value: object) -> str:
    """JSON scalars as IAM reads them: booleans are the strings "true"/"false"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_strings(value: object) -> list[str]:
    """The string-or-list form used by every policy element."""
    if isinstance(value, (list, tuple)):
        return [scalar(item) for item in value]
    return [scalar(value)]


@dataclass(frozen=True)
class Env:
    """The request context with lower-cased keys (IAM keys are case-insensitive)."""

    context: Mapping[str, ContextValue]
    variables: bool = True  # policy variables exist only in Version 2012-10-17 documents

    def get(self, key: str) -> ContextValue | None:
        return self.context.get(key.lower())

    def with_variables(self, enabled: bool) -> Env:
        return replace(self, variables=enabled)


def make_env(context: Mapping[str, object]) -> Env:
    normal: dict[str, ContextValue] = {}
    for key, value in context.items():
        many = isinstance(value, (list, tuple, set, frozenset))
        normal[key.lower()] = tuple(as_strings(list(value))) if many else scalar(value)
    return Env(normal)


# --- policy variables -------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_WITH_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'([^']*)'\s*$")
_ESCAPES = ("*", "?", "$")


def _variable(inner: str, env: Env) -> str | Unknown:
    if inner in _ESCAPES:
        return inner
    match = _WITH_DEFAULT.match(inner)
    key, default = (match.group(1), match.group(2)) if match else (inner.strip(), None)
    value = env.get(key)
    if isinstance(value, str):
        return value
    if value is None and default is not None:
        return default
    if value is None:
        return Unknown(f"policy variable ${{{key}}} cannot be resolved from the request context")
    return Unknown(f"policy variable ${{{key}}} has several values in the request context")


def resolve(value: str, env: Env) -> tuple[Piece, ...] | Unknown:
    """Substitute ${...} variables; an unresolvable one makes the whole value Unknown."""
    if not env.variables:
        return ((value, False),)
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in _VARIABLE.finditer(value):
        pieces.append((value[position : match.start()], False))
        substituted = _variable(match.group(1), env)
        if isinstance(substituted, Unknown):
            return substituted
        pieces.append((substituted, True))
        position = match.end()
    pieces.append((value[position:], False))
    return tuple(piece for piece in pieces if piece[0])


def wildcard(pattern: str) -> tuple[Piece, ...]:
    """A pattern with no variables to substitute (actions, or any pre-2012 document)."""
    return ((pattern, False),)


def text(pieces: tuple[Piece, ...]) -> str:
    return "".join(part for part, _ in pieces)


# --- wildcards --------------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _regex(pieces: tuple[Piece, ...], ignore_case: bool, arn: bool) -> re.Pattern[str]:
    # arn=True is how IAM matches ARNs (the Resource element, and the resource part of ArnLike):
    # "*" and "?" stay within one colon-delimited segment, except that a "*" that ends a segment
    # (followed by ":" or the end of the pattern) may expand beyond the colons. With arn=False
    # (StringLike, actions) they match any character.
    out: list[str] = []
    flat = [(char, literal) for part, literal in pieces for char in part]
    for index, (char, literal) in enumerate(flat):
        if literal or char not in "*?":
            out.append(re.escape(char))
            continue
        if not arn:
            out.append(".*" if char == "*" else ".")
            continue
        following = flat[index + 1][0] if index + 1 < len(flat) else ":"
        spans = char == "*" and following == ":"
        out.append(".*" if spans else "[^:]*" if char == "*" else "[^:]")
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(out), flags)


def glob_match(pieces: tuple[Piece, ...], value: str, *, ignore_case: bool = False, arn: bool = False) -> bool:
    """`*` is any run of characters (including none), `?` exactly one; the whole value must match."""
    return _regex(pieces, ignore_case, arn).fullmatch(value) is not None


def _split_pieces(pieces: tuple[Piece, ...], parts: int) -> list[tuple[Piece, ...]]:
    """Split a substituted pattern at its first ``parts - 1`` colons, keeping literal flags."""
    out: list[list[Piece]] = [[]]
    for part, literal in pieces:
        for char in part:
            if char == ":" and len(out) < parts:
                out.append([])
            else:
                out[-1].append((char, literal))
    return [tuple(segment) for segment in out]


def arn_components(value: str) -> list[str] | None:
    """The six colon-delimited components of an ARN (the last keeps its colons), or None."""
    parts = value.split(":", 5)
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def arn_like(value: str, pattern: tuple[Piece, ...]) -> bool | None:
    """ArnLike/ArnEquals: each of the six components matched on its own; None when a side is no ARN."""
    components = arn_components(value)
    segments = _split_pieces(pattern, 6)
    if components is None or len(segments) != 6 or text(segments[0]) != "arn":
        return None
    head = all(glob_match(seg, comp) for seg, comp in zip(segments[:5], components[:5]))
    return head and glob_match(segments[5], components[5], arn=True)


# --- condition operators ----------------------------------------------------------------------

# A matcher answers True or False, or None when the two sides cannot be compared at all (a number
# operator on text, an ARN operator on something that is no ARN): then neither the operator nor
# its negation holds.
Matcher = Callable[[str, tuple[Piece, ...]], Union[bool, None]]
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _number(value: str) -> Decimal | None:
    return Decimal(value) if _NUMBER.fullmatch(value) else None


def _numeric(compare: Callable[[Decimal, Decimal], bool]) -> Matcher:
    def match(value: str, pattern: tuple[Piece, ...]) -> bool | None:
        left, right = _number(value), _number(text(pattern))
        return None if left is None or right is None else compare(left, right)

    return match


_POSITIVE: dict[str, Matcher] = {
    "stringequals": lambda value, pattern: value == text(pattern),
    "stringequalsignorecase": lambda value, pattern: value.casefold() == text(pattern).casefold(),
    "stringlike": lambda value, pattern: glob_match(pattern, value),
    # IAM documents ArnEquals and ArnLike with the same meaning: per-segment, wildcards allowed.
    "arnequals": arn_like,
    "arnlike": arn_like,
    "bool": lambda value, pattern: value.lower() == text(pattern).lower(),
    "numericequals": _numeric(operator.eq),
    "numericlessthan": _numeric(operator.lt),
    "numericlessthanequals": _numeric(operator.le),
    "numericgreaterthan": _numeric(operator.gt),
    "numericgreaterthanequals": _numeric(operator.ge),
}
_NEGATED: dict[str, str] = {
    "stringnotequals": "stringequals",
    "stringnotequalsignorecase": "stringequalsignorecase",
    "stringnotlike": "stringlike",
    "arnnotequals": "arnequals",
    "arnnotlike": "arnlike",
    "numericnotequals": "numericequals",
}
_SET_OPERATORS = ("", "forallvalues", "foranyvalue")


@dataclass(frozen=True)
class Operator:
    base: str  # a key of _POSITIVE, or "null"
    negated: bool = False
    set_op: str = ""  # "", "forallvalues" or "foranyvalue"
    if_exists: bool = False


def parse_operator(name: str) -> Operator | None:
    """`ForAnyValue:StringNotLikeIfExists` -> Operator; None for an operator we do not know."""
    set_op, _, rest = name.lower().rpartition(":")
    if set_op not in _SET_OPERATORS:
        return None
    if_exists = rest.endswith("ifexists")
    base = rest[: -len("ifexists")] if if_exists else rest
    if base == "null":
        return None if set_op or if_exists else Operator("null")
    positive = _NEGATED.get(base, base)
    if positive not in _POSITIVE:
        return None
    return Operator(positive, base in _NEGATED, set_op, if_exists)


def _matches_one(op: Operator, value: str, patterns: list[tuple[Piece, ...]]) -> bool:
    # Several policy values are OR'd; for a negated operator that makes NOR. A pair that cannot be
    # compared satisfies neither form.
    results = [_POSITIVE[op.base](value, pattern) for pattern in patterns]
    if op.negated:
        return all(result is False for result in results)
    return any(result is True for result in results)


def _match_values(op: Operator, key: str, current: ContextValue, patterns: list[tuple[Piece, ...]]) -> Truth:
    if op.set_op == "forallvalues":
        return all(_matches_one(op, value, patterns) for value in current)
    if op.set_op == "foranyvalue":
        return any(_matches_one(op, value, patterns) for value in current)
    if not isinstance(current, str):
        # IAM: a multivalued key needs ForAllValues/ForAnyValue; a single-valued operator on it
        # has no defined result, so it can neither allow nor spare a deny.
        return Unknown(f"condition key {key} is multivalued and needs ForAllValues or ForAnyValue")
    return _matches_one(op, current, patterns)


def _null(key: str, expected: list[str], env: Env) -> Truth:
    wanted = {value.lower() for value in expected}
    if not wanted <= {"true", "false"}:
        return Unknown(f"Null condition on {key} expects true or false, got {sorted(wanted)}")
    absent = env.get(key) is None
    return ("true" if absent else "false") in wanted


def _key_truth(op: Operator, key: str, raw: object, env: Env) -> Truth:
    expected = as_strings(raw)
    if op.base == "null":
        return _null(key, expected, env)
    current = env.get(key)
    if current is None:
        # The context we were given may be incomplete, so absence is only decisive where the
        # operator defines it: ...IfExists passes, ForAllValues is vacuously true.
        if op.set_op == "foranyvalue" and op.if_exists:
            # ForAnyValue on an absent key is false, IfExists on an absent key is true: undefined.
            return Unknown(f"ForAnyValue with IfExists on the absent key {key} has no defined result")
        if op.if_exists or op.set_op == "forallvalues":
            return True
        return Unknown(f"condition key {key} cannot be evaluated (not in the request context)")
    patterns = [resolve(value, env) for value in expected]
    for pattern in patterns:
        if isinstance(pattern, Unknown):
            return pattern
    values = (current,) if op.set_op and isinstance(current, str) else current
    return _match_values(op, key, values, patterns)  # type: ignore[arg-type]


def _operator_truth(name: str, keys: object, env: Env) -> Truth:
    op = parse_operator(name)
    if op is None:
        return Unknown(f"condition operator {name} is not supported")
    if not isinstance(keys, dict):
        return Unknown(f"condition operator {name} does not map keys to values")
    return all3(_key_truth(op, key, raw, env) for key, raw in keys.items())


def condition_truth(block: object, env: Env) -> Truth:
    """Operators AND'd, keys within an operator AND'd, values for one key OR'd."""
    if block is None:
        return True
    if not isinstance(block, dict):
        return Unknown("Condition is not a JSON object")
    return all3(_operator_truth(name, keys, env) for name, keys in block.items())
