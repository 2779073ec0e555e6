"""An identity-based IAM policy evaluated with AWS's semantics, for the requests of iam_requests.py.

A request is allowed when some Allow statement matches it and no Deny statement does (an explicit Deny wins;
nothing matching is an implicit deny). A statement matches when its Action (or NotAction) matches the action,
its Resource (or NotResource) matches the ARN, and every condition holds. `*` and `?` are globs; actions
compare without case, ARNs with it. Conditions: StringEquals and StringLike, with the ForAllValues: /
ForAnyValue: set qualifiers and the IfExists suffix; any other operator, and any condition key the request's
mapping does not compute, raises instead of guessing.

Minimality is judged by removal: a grant is needed when taking it away denies some recorded request. Each
whole statement and each entry of a list (an action, a resource, a condition value) is tried.
"""

import copy
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from imageflow_dagster_tests.iam_requests import IamRequest

_STRING_OPERATORS = ("StringEquals", "StringLike")
_QUALIFIERS = ("ForAllValues", "ForAnyValue")


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement; extend it rather than guess."""


@dataclass(frozen=True)
class Policy:
    statements: tuple[dict, ...]

    @classmethod
    def load(cls, path: Path, region: str, account: str) -> "Policy":
        text = path.read_text().replace("${Region}", region).replace("${Account}", account)
        return cls.parse(json.loads(text))

    @classmethod
    def parse(cls, document: dict) -> "Policy":
        statements = document["Statement"]
        statements = [statements] if isinstance(statements, dict) else statements
        for statement in statements:
            _check_statement(statement)
        return cls(tuple(statements))

    def allows(self, request: IamRequest) -> bool:
        matching = [s for s in self.statements if _matches(s, request)]
        effects = {s["Effect"] for s in matching}
        return "Allow" in effects and "Deny" not in effects

    def without_statement(self, index: int) -> "Policy":
        return Policy(self.statements[:index] + self.statements[index + 1 :])

    def with_statement(self, index: int, statement: dict) -> "Policy":
        return Policy(self.statements[:index] + (statement,) + self.statements[index + 1 :])


def name_of(statement: dict, index: int) -> str:
    return statement.get("Sid") or f"statement {index}"


def unneeded_grants(policy: Policy, requests: list[IamRequest]) -> list[str]:
    """Every Allow statement, and every entry of its lists, that no allowed request needs."""
    allowed = [r for r in requests if policy.allows(r)]
    findings = []
    for index, statement in enumerate(policy.statements):
        if statement["Effect"] != "Allow":
            continue
        name = name_of(statement, index)
        if all(policy.without_statement(index).allows(r) for r in allowed):
            findings.append(f"{name}: the whole statement")
            continue
        for where, narrower in _narrowings(statement):
            if all(policy.with_statement(index, narrower).allows(r) for r in allowed):
                findings.append(f"{name}: {where}")
    return findings


def _narrowings(statement: dict):
    """(what was removed, the statement without it) for each entry of a list of two or more."""
    for field in ("Action", "Resource"):  # a NotAction or NotResource entry removed would widen the grant
        entries = statement.get(field)
        if isinstance(entries, list) and len(entries) > 1:
            for entry in entries:
                yield f"{field} {entry}", {**statement, field: [e for e in entries if e != entry]}
    for operator, tests in statement.get("Condition", {}).items():
        for key, values in tests.items():
            if isinstance(values, list) and len(values) > 1:
                for value in values:
                    narrower = copy.deepcopy(statement)
                    narrower["Condition"][operator][key] = [v for v in values if v != value]
                    yield f"Condition {operator} {key} {value}", narrower


def _check_statement(statement: dict) -> None:
    if not re.fullmatch(r"[A-Za-z0-9]*", statement.get("Sid", "")):
        raise UnsupportedPolicy(f"IAM refuses a Sid other than letters and digits: {statement['Sid']!r}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicy(f"Effect must be Allow or Deny: {statement}")
    if "Principal" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy("a Principal belongs in a resource policy, not an identity policy")
    for pair in (("Action", "NotAction"), ("Resource", "NotResource")):
        if sum(field in statement for field in pair) != 1:
            raise UnsupportedPolicy(f"a statement needs exactly one of {pair}: {statement}")
    for field in ("Action", "NotAction", "Resource", "NotResource"):
        for pattern in _listed(statement.get(field)):
            if "${" in pattern:
                raise UnsupportedPolicy(f"unsubstituted variable in {field} {pattern}")
    for operator in statement.get("Condition", {}):
        _parse_operator(operator)


def _matches(statement: dict, request: IamRequest) -> bool:
    if "Action" in statement:
        action_ok = any(_glob(p, request.action, True) for p in _listed(statement["Action"]))
    else:
        action_ok = not any(_glob(p, request.action, True) for p in _listed(statement["NotAction"]))
    if not action_ok:
        return False
    if "Resource" in statement:
        resource_ok = any(_glob(p, request.resource, False) for p in _listed(statement["Resource"]))
    else:
        resource_ok = not any(_glob(p, request.resource, False) for p in _listed(statement["NotResource"]))
    return resource_ok and _conditions_hold(statement.get("Condition", {}), request)


def _conditions_hold(conditions: dict, request: IamRequest) -> bool:
    """Operators AND, keys within an operator AND, values of one key OR."""
    return all(
        _condition_holds(operator, key, _listed(expected), request)
        for operator, tests in conditions.items()
        for key, expected in tests.items()
    )


def _condition_holds(operator: str, key: str, expected: list[str], request: IamRequest) -> bool:
    qualifier, base, if_exists = _parse_operator(operator)
    if key not in request.modeled:
        raise UnsupportedPolicy(f"condition key {key} is not computed for {request.action} (iam_requests.py)")
    values = request.values(key)
    like = base == "StringLike"

    def matches(value: str) -> bool:
        return any(_glob(e, value, False) if like else e == value for e in expected)

    if qualifier == "ForAllValues":  # true for an absent or empty key, as in AWS
        return values is None or all(matches(v) for v in values)
    if qualifier == "ForAnyValue":
        return values is not None and any(matches(v) for v in values)
    if values is None:
        return if_exists
    if len(values) != 1:
        raise UnsupportedPolicy(f"{key} has several values: use ForAllValues or ForAnyValue with {base}")
    return matches(values[0])


def _parse_operator(operator: str) -> tuple[str | None, str, bool]:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _STRING_OPERATORS or (qualifier and qualifier not in _QUALIFIERS):
        raise UnsupportedPolicy(f"condition operator {operator} is not implemented here")
    return qualifier or None, base, if_exists


def _listed(value) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool) -> bool:
    return _compiled(pattern, ignore_case).fullmatch(value) is not None


@lru_cache(maxsize=1024)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL)
