"""The runner's expression languages: `when` (govaluate), retry expressions (expr-lang), `depends`."""
from __future__ import annotations

import pytest

from workflows.argo.errors import ExpressionError
from workflows.argo.expr import DependsExpr, DependsRef, evaluate_expr, evaluate_when


@pytest.mark.parametrize("text, expected", [
    ("true == true", True),
    ("false == true", False),
    ("'x' != 'y'", True),
    ('"a b" == "a b"', True),
    ("heads == heads", True),          # bare words are strings, as in Argo
    ("Succeeded != Failed", True),
    ("3 > 2.5", True),
    ("10 >= 10", True),
    ("2 < 10", True),                  # numbers compare as numbers
    ("'2' < '10'", False),             # strings compare as strings
    ("1 == '1'", False),               # no coercion between kinds
    ("!(1 > 2) && (true || false)", True),
    ("1 + 2 * 3 == 7", True),
    ("'abc' =~ '^a.c$'", True),
    ("'abc' !~ 'z'", True),
    ("true ? 1 == 1 : false", True),
    ("'b' in ('a', 'b')", True),       # govaluate's `in` over a parenthesised array
    ("c IN ('a', 'b')", False),
    ("'v1.2' == 'v1.2'", True),
])
def test_when(text: str, expected: bool) -> None:
    assert evaluate_when(text) is expected


@pytest.mark.parametrize("text, message", [
    ("my-value == my-value", "arithmetic needs numbers"),
    ("computer science == math", "unexpected 'science'"),
    ("1 ==", "unexpected the end"),
    ("(true", r"expected '\)'"),
    ("'open", "unterminated string"),
    ("1 + 1", "expected a boolean"),
    ("true && 1", "is not a boolean"),
    ("1 < 'a'", "cannot compare"),
    ("a # b", "invalid token '#'"),
    ("v1.2 == v1.2", r"unquoted 'v1.2' is a govaluate accessor"),   # Argo: an accessor, not a string
    ("model.bin == model.bin", "quote it: 'model.bin'"),
    ("'a' in ('a')", "'in' needs an array"),
])
def test_when_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate_when(text)


# Argo v4.1's `when` is workflow/controller/steps.go shouldExecute: govaluate (go.mod pins the commit whose code is
# 9aa4983), its VARIABLE tokens turned into strings. Each verdict below is what that function returned for the
# expression (a Go program calling it, against Debian's golang-github-knetic-govaluate-dev 3.0.0+git20171022.9aa4983).
GOVALUATE_VERDICTS = {
    "1 + 'a' == '1a'": True, "'a' + 1.5 == 'a1.5'": True, "'x' + true == 'xtrue'": True, "1 + true == 2": None,
    "2 ** 3 == 8": True, "-2 ** 2 == 4": True, "1 & 3 == 1": True, "(1 | 2) == 3": True, "5 ^ 1 == 4": True,
    "1 << 3 == 8": True, "8 >> 1 == 4": True, "~0 == -1": True, "0x10 == 16": True, "0xZ == 1": None,
    ".5 == 0.5": True, "5. == 5": True, "1e3 == 1000": None, "1..2 == 1": None, "_foo == _foo": None,
    "x_1 == x_1": True, "1==-1": None, "!!true": None, "'a\\'b' == \"a'b\"": None, "\"it's\" == \"it's\"": None,
    "[hello world] == 'hello world'": True, "[a.b] == 'a.b'": True,
    "'2024-01-01' == '2024-01-01T00:00:00Z'": True, "'2024-01-01' == '2024-01-01 00:00'": True,
    "'2024-01-01T10:00:00+02:00' == '2024-01-01T08:00:00Z'": True, "'2024-01-01T10Z' == '2024-01-01 10:00'": True,
    "'2024-01-01T10:00:00.5Z' > '2024-01-01T10:00:00Z'": False, "'2024-01-01' > 'x'": None,
    "'2024-01-01' > 5": True, "'2024-13-01' > 'a'": False, "'2024-01-01T10:00:00' > 'a'": False,
    "x == y && v1.2": False, "x == y && model.bin": None, "v1.2 == v1.2": None, "a. == a.": None,
    "'2' > '10'": True, "2 > '10'": None, "'abc' < 'abd'": True, "1 == '1'": False, "'a' IN ('a')": None,
}


@pytest.mark.parametrize("text", GOVALUATE_VERDICTS)
def test_when_follows_govaluate_as_argo_runs_it(text: str) -> None:
    """True/False: what govaluate evaluated; None: govaluate refused it (the task is an Error on Argo)."""
    expected = GOVALUATE_VERDICTS[text]
    if expected is None:
        with pytest.raises(ExpressionError):
            evaluate_when(text)
    else:
        assert evaluate_when(text) is expected


RETRY = "lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 1"


@pytest.mark.parametrize("status, code, expected", [
    ("Failed", "1", True), ("Failed", "2", False), ("Failed", "3", False), ("Error", "-1", True), ("Error", "", True),
])
def test_retry_expression_of_the_templates(status: str, code: str, expected: bool) -> None:
    assert evaluate_expr(RETRY, {"lastRetry": {"status": status, "exitCode": code, "duration": "5"}}) is expected


def test_expr_language_features() -> None:
    last = {"lastRetry": {"status": "Failed", "exitCode": "137", "duration": "12", "message": "OOMKilled (exit 137)"}}
    assert evaluate_expr("asInt(lastRetry.exitCode) in [137, 143]", last) is True
    assert evaluate_expr("asFloat(lastRetry.duration) < 60.5 and not (lastRetry.status == 'Error')", last) is True
    assert evaluate_expr("lastRetry.message contains 'OOM' or lastRetry.message matches '^x'", last) is True
    assert evaluate_expr("lastRetry.exitCode == 137", last) is False  # a string is not a number
    assert evaluate_expr("string(1) + 'x'", last) == "1x"
    assert evaluate_expr("len('abc') == 3 && -1 < 0", last) is True
    with pytest.raises(ExpressionError, match="unknown variable 'lastRetry.nope'"):
        evaluate_expr("lastRetry.nope == 1", last)
    with pytest.raises(ExpressionError, match="unknown function eval"):
        evaluate_expr("eval('1')", last)
    with pytest.raises(ExpressionError, match="not a number"):
        evaluate_expr("asInt(lastRetry.message) == 1", last)


def _results(phases: dict[str, str]):
    def result_of(ref: DependsRef) -> bool:
        phase = phases[ref.task]
        if ref.result is None:
            return phase in ("Succeeded", "Skipped")
        return {"Errored": phase == "Error"}.get(ref.result, phase == ref.result)
    return result_of


def test_depends() -> None:
    expr = DependsExpr("merge-lora && (plan-eval.Failed || !x.Succeeded)")
    assert expr.tasks == ["merge-lora", "plan-eval", "x"]
    assert expr.refs[0] == DependsRef("merge-lora", None)
    assert expr.evaluate(_results({"merge-lora": "Succeeded", "plan-eval": "Succeeded", "x": "Failed"})) is True
    assert expr.evaluate(_results({"merge-lora": "Skipped", "plan-eval": "Succeeded", "x": "Succeeded"})) is False
    assert expr.evaluate(_results({"merge-lora": "Failed", "plan-eval": "Failed", "x": "Failed"})) is False
    assert DependsExpr("a || b && c").evaluate(_results({"a": "Succeeded", "b": "Failed", "c": "Failed"})) is True
    assert DependsExpr("!(a.Errored)").evaluate(_results({"a": "Error"})) is False


@pytest.mark.parametrize("text, message", [
    ("a.Succeded", "task result 'Succeded' for task 'a' is invalid"),
    ("a &&", "ends too early"),
    ("(a", r"missing '\)'"),
    ("a b", "unexpected"),
    ("a == b", "unexpected character '='"),
    ("", "empty depends"),
])
def test_depends_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        DependsExpr(text)
