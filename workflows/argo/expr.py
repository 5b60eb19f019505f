"""The three small expression languages of an Argo manifest, evaluated without Python's `eval`.

- `when` (govaluate, after `{{...}}` substitution): `true == true`, `'a' != 'b'`, `3 > 2`,
  `Succeeded == Succeeded`, `'b' in ('a', 'b')`. As in Argo, a bare word that is not
  `true`/`false` is a string, so an unquoted substituted value compares as text; a bare word
  with a dot (`v1.2`, `model.bin`) is a govaluate accessor, which Argo cannot evaluate: an error
  (`v1.2` only when evaluated, so `false && v1.2` is false; `model.bin`, a lowercase field, at once).
  Numbers and strings never equal each other (`1 == '1'` is false); govaluate's lexer is followed:
  numbers are float64 (`.5`, `0x1F`; `1e3` is no number), a word starts with a letter, a string ends
  at either quote, a quoted date or RFC 3339 time is a number of seconds, `+` with text joins text
  (`'a' + 1`), and `**`, `&`, `|`, `^`, `<<`, `>>`, `~` work.
- `retryStrategy.expression` (expr-lang): `lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 1`;
  identifiers are variables, with `asInt`, `asFloat`, `string`, `int`, `float`, `len`.
- `depends`: `A && (B.Failed || !C.Succeeded)`, task names with dashes, the results
  Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded, AllFailed.

Each is a tokenizer plus a recursive-descent parser; errors raise ExpressionError.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.argo.errors import ExpressionError
from workflows.argo.phase import TASK_RESULTS

# --- tokens ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OPERATORS = ("&&", "||", "==", "!=", "<=", ">=", "=~", "!~", "**", "<", ">", "!", "+", "-", "*", "/", "%",
              "?", ":", "(", ")", "[", "]", ",")
_WORD_OPERATORS = {"and": "&&", "or": "||", "not": "!", "in": "in", "matches": "matches",
                   "contains": "contains", "startsWith": "startsWith", "endsWith": "endsWith"}


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, ident, op, end
    value: Any
    pos: int


_GOVALUATE_SYMBOLS = frozenset({"==", "!=", ">", ">=", "<", "<=", "=~", "!~", "&&", "||", "+", "-", "*", "/", "%",
                                "**", "&", "|", "^", "<<", ">>", "!", "~", "?", ":", "??"})
_GOVALUATE_NUMBER = re.compile(r"0x([0-9a-fA-F]*)|[0-9.]+")
_GOVALUATE_WORD = re.compile(r"[^\W\d_][\w.]*")  # a letter, then letters, digits, '_' and '.'
_GOVALUATE_SYMBOL = re.compile(r"""[^\w\s()\[\]'",]+""")
# The quoted strings govaluate's lexer reads as times (tryParseTime), compared as Unix seconds: the ISO 8601 and
# RFC 3339 layouts; Go parses them in the controller's time.Local, which is UTC in Argo's image.
_GOVALUATE_TIMES = [re.compile(pattern) for pattern in (
    r"(\d{4})-(\d\d)-(\d\d)",
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d)",
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?(?P<zone>[+-]\d\d:\d\d)?",
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(?P<zone>Z|[+-]\d\d:\d\d)",
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d)(?::(\d\d)(?::(\d\d)(\.\d+)?)?)?(?P<zone>Z|[+-]\d{4})",
)]


def _govaluate_time(text: str) -> float | None:
    """Unix seconds when govaluate's lexer would read the quoted `text` as a time, else None."""
    for pattern in _GOVALUATE_TIMES:
        match = pattern.fullmatch(text)
        if not match:
            continue
        year, month, day, hour, minute, second = ([int(part) if part else 0 for part in match.groups()[:6]] + [0] * 6)[:6]
        zone = match.groupdict().get("zone") or "Z"
        offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[-2:])) * 60
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
        except ValueError:
            return None  # not a date (month 13): a plain string, as Go's time.Parse fails
        return moment.timestamp() - offset  # whole seconds: govaluate compares time.Unix()
    return None


def tokenize(text: str, word_operators: bool) -> list[Token]:
    """expr-lang's tokens (`word_operators`: `and`, `not`, `matches`, ...), or govaluate's (`when`)."""
    read = _expr_token if word_operators else _govaluate_token
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        token, i = read(text, i)
        tokens.append(token)
    tokens.append(Token("end", None, len(text)))
    return tokens


def _govaluate_token(text: str, i: int) -> tuple[Token, int]:
    """The token at `i` as govaluate's lexer (parsing.go) reads it, and where the next begins: numbers are runs of
    digits and dots (`.5`, `5.`; no exponent) or `0x` hex; a word starts with a letter; a string ends at either
    quote and may read as a time; `[any text]` is a word; an operator is the whole run of symbol characters
    (`==-1` is no operator)."""
    char = text[i]
    if char.isdigit() or char == ".":
        match = _GOVALUATE_NUMBER.match(text, i)
        assert match is not None
        try:
            number = float(int(match.group(1), 16)) if match.group(1) is not None else float(match.group())
        except ValueError:
            raise ExpressionError(f"unable to parse the number {match.group()!r} at position {i} in {text!r}") from None
        return Token("num", number, i), match.end()
    if char in ",()":
        return Token("op", char, i), i + 1
    if char == "[":
        end = text.find("]", i)
        if end < 0:
            raise ExpressionError(f"unclosed parameter bracket at position {i} in {text!r}")
        return Token("str", text[i + 1:end], i), end + 1  # a variable, which Argo turns into its own name
    if char.isalpha():
        match = _GOVALUATE_WORD.match(text, i)
        assert match is not None
        word = match.group()
        return (Token("op", "in", i) if word in ("in", "IN") else Token("ident", word, i)), match.end()
    if char in "'\"":
        quoted, after = _read_string(text, i, ends="'\"")
        moment = _govaluate_time(quoted)
        return (Token("str", quoted, i) if moment is None else Token("num", moment, i)), after
    match = _GOVALUATE_SYMBOL.match(text, i)
    symbol = match.group() if match else char
    if symbol not in _GOVALUATE_SYMBOLS:
        raise ExpressionError(f"invalid token {symbol!r} at position {i} in {text!r}")
    return Token("op", symbol, i), i + len(symbol)


def _expr_token(text: str, i: int) -> tuple[Token, int]:
    """The expr-lang token at `i`, and where the next begins."""
    char = text[i]
    if char in "'\"":
        value, after = _read_string(text, i)
        return Token("str", value, after), after
    number = _NUMBER.match(text, i)
    if number:
        raw = number.group()
        return Token("num", float(raw) if any(c in raw for c in ".eE") else int(raw), i), number.end()
    ident = _IDENT.match(text, i)
    if ident:
        word = ident.group()
        token = Token("op", _WORD_OPERATORS[word], i) if word in _WORD_OPERATORS else Token("ident", word, i)
        return token, ident.end()
    op = next((op for op in _OPERATORS if text.startswith(op, i)), None)
    if op is None:
        raise ExpressionError(f"unexpected character {char!r} at position {i} in {text!r}")
    return Token("op", op, i), i + len(op)


def _read_string(text: str, start: int, ends: str = "") -> tuple[str, int]:
    """A quoted string from `start`, ending at its own quote (or at any of `ends`: govaluate's either quote)."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'} if not ends else {}  # govaluate: `\x` is x
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if char == quote or char in ends:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise ExpressionError(f"unterminated string starting at position {start} in {text!r}")


# --- values ---------------------------------------------------------------------------------

def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "nil"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, bool) else str(value).lower()


def _equal(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right


def _as_number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ExpressionError(f"{name}: {_show(value)} is not a number")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip()) if name == "asInt" else float(value.strip())
        except ValueError:
            raise ExpressionError(f"{name}({value!r}): not a number") from None
    raise ExpressionError(f"{name}: cannot convert {_show(value)}")


def _as_int(value: Any) -> int:
    if isinstance(value, float):
        return int(value)
    return int(_as_number(value, "asInt"))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "asInt": _as_int,
    "int": _as_int,
    "asFloat": lambda value: float(_as_number(value, "asFloat")),
    "float": lambda value: float(_as_number(value, "asFloat")),
    "string": lambda value: value if isinstance(value, str) else (str(value).lower() if isinstance(value, bool) else str(value)),
    "len": lambda value: len(value),
}


# --- the parser / evaluator ---------------------------------------------------------------

class _Parser:
    """Parses to a closure tree; `variables` is None for govaluate (`when`) mode."""

    def __init__(self, text: str, variables: Mapping[str, Any] | None) -> None:
        self.text = text
        self.variables = variables
        self.expr_mode = variables is not None
        self.tokens = tokenize(text, word_operators=self.expr_mode)
        self.i = 0

    # helpers
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def accept(self, *ops: str) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.value in ops:
            self.i += 1
            return token.value
        return None

    def expect(self, op: str) -> None:
        if not self.accept(op):
            token = self.peek()
            found = "the end" if token.kind == "end" else repr(token.value)
            raise ExpressionError(f"expected {op!r} at position {token.pos} in {self.text!r}, found {found}")

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(f"{message} in {self.text!r}")

    def parse(self) -> Callable[[], Any]:
        if self.peek().kind == "end":
            raise self.error("empty expression")
        node = self.ternary()
        token = self.peek()
        if token.kind != "end":
            hint = " (quote values that contain spaces or dashes)" if not self.expr_mode else ""
            raise self.error(f"unexpected {token.value!r} at position {token.pos}{hint}")
        return node

    # grammar
    def ternary(self) -> Callable[[], Any]:
        condition = self.logic_or()
        if self.accept("?"):
            yes = self.ternary()
            self.expect(":")
            no = self.ternary()
            return lambda: yes() if self.boolean(condition(), "?:") else no()
        return condition

    # the binary levels, loosest first: each is a left-associative chain of the next one
    def logic_or(self) -> Callable[[], Any]:
        return self._left_chain(self.logic_and, ("||",), self._logic)

    def logic_and(self) -> Callable[[], Any]:
        return self._left_chain(self.compare, ("&&",), self._logic)

    def compare(self) -> Callable[[], Any]:
        ops = ("==", "!=", "<", "<=", ">", ">=", "=~", "!~", "in", "matches", "contains", "startsWith", "endsWith")
        return self._left_chain(self.additive if self.expr_mode else self.bitwise, ops, self._on_values(self.binary))

    # govaluate's bitwise and shift levels, between its comparators and `+` (stagePlanner.go)
    def bitwise(self) -> Callable[[], Any]:
        return self._left_chain(self.shift, ("&", "|", "^"), self._on_values(self.integers))

    def shift(self) -> Callable[[], Any]:
        return self._left_chain(self.additive, ("<<", ">>"), self._on_values(self.integers))

    def additive(self) -> Callable[[], Any]:
        return self._left_chain(self.multiplicative, ("+", "-"), self._on_values(self.arith))

    def multiplicative(self) -> Callable[[], Any]:
        return self._left_chain(self.exponential, ("*", "/", "%"), self._on_values(self.arith))

    def exponential(self) -> Callable[[], Any]:
        return self._left_chain(self.unary, ("**",), self._on_values(self.arith))

    def _left_chain(self, operand: Callable[[], Callable[[], Any]], ops: tuple[str, ...],
                    apply: Callable[[str, Callable[[], Any], Callable[[], Any]], Any]) -> Callable[[], Any]:
        left = operand()
        while (op := self.accept(*ops)) is not None:
            right = operand()
            left = (lambda a, b, o: lambda: apply(o, a, b))(left, right, op)
        return left

    @staticmethod
    def _on_values(operation: Callable[[str, Any, Any], Any]) -> Callable[[str, Callable[[], Any], Callable[[], Any]], Any]:
        return lambda op, left, right: operation(op, left(), right())

    def _logic(self, op: str, left: Callable[[], Any], right: Callable[[], Any]) -> bool:
        """`&&` and `||`, short-circuiting: the right side is evaluated only when it decides."""
        first = self.boolean(left(), op)
        if first == (op == "||"):
            return first
        return self.boolean(right(), op)

    def unary(self) -> Callable[[], Any]:
        if self.accept("!"):
            operand = self.unary()
            return lambda: not self.boolean(operand(), "!")
        if self.accept("-"):
            operand = self.unary()
            return lambda: -self.number(operand(), "-")
        if self.accept("+"):
            operand = self.unary()
            return lambda: self.number(operand(), "+")
        if not self.expr_mode and self.accept("~"):
            operand = self.unary()
            return lambda: float(~int(self.number(operand(), "~")))
        return self.primary()

    def primary(self) -> Callable[[], Any]:
        token = self.take()
        if token.kind in ("num", "str"):
            value = token.value
            return lambda: value
        if token.kind == "op" and token.value == "(":
            inner = self.ternary()
            if not self.expr_mode and (self.peek().kind, self.peek().value) == ("op", ","):  # govaluate: ('a', 'b')
                members = self.items(")", first=inner)
                return lambda: [member() for member in members]
            self.expect(")")
            return inner
        if token.kind == "op" and token.value == "[" and self.expr_mode:
            elements = self.items("]")
            return lambda: [element() for element in elements]
        if token.kind == "ident":
            return self.identifier(token)
        found = "the end" if token.kind == "end" else repr(token.value)
        raise self.error(f"unexpected {found} at position {token.pos}")

    def items(self, closer: str, first: Callable[[], Any] | None = None) -> list[Callable[[], Any]]:
        """A comma-separated list up to `closer` (its opener already taken; `first` already parsed)."""
        if first is None and self.accept(closer):
            return []
        parsed = [first if first is not None else self.ternary()]
        while self.accept(","):
            parsed.append(self.ternary())
        self.expect(closer)
        return parsed

    def identifier(self, token: Token) -> Callable[[], Any]:
        name = token.value
        if name in ("true", "false"):
            value = name == "true"
            return lambda: value
        if not self.expr_mode:
            if "." in name:
                error = self.error(f"unquoted {name!r} is a govaluate accessor, not a string, and Argo cannot "
                                   f"evaluate it; quote it: '{name}'")
                fields = name.split(".")[1:]
                if name.endswith(".") or any(part[:1].upper() != part[:1] for part in fields):
                    raise error  # govaluate's lexer refuses a hanging or unexported (lowercase) field at once

                def fail() -> Any:
                    raise error  # any other accessor fails only when evaluated: `false && v1.2` is false

                return fail
            # Argo's `when`: govaluate variables are turned into strings.
            return lambda: name
        if name == "nil":
            return lambda: None
        if self.accept("("):
            if name not in FUNCTIONS:
                raise self.error(f"unknown function {name}() (supported: {', '.join(sorted(FUNCTIONS))})")
            args = self.items(")")
            function = FUNCTIONS[name]
            return lambda: function(*[arg() for arg in args])
        return lambda: self.lookup(name)

    def lookup(self, name: str) -> Any:
        assert self.variables is not None
        value: Any = self.variables
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise self.error(f"unknown variable {name!r} (known: {', '.join(_known(self.variables))})")
            value = value[part]
        return value

    # operations
    def number(self, value: Any, op: str) -> Any:
        if _kind(value) != "number":
            raise self.error(f"{_show(value)} is not a number and cannot be used with {op!r}")
        return value

    def boolean(self, value: Any, op: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(f"{_show(value)} is not a boolean and cannot be used with {op!r}")
        return value

    def binary(self, op: str, left: Any, right: Any) -> Any:
        if op == "==":
            return _equal(left, right)
        if op == "!=":
            return not _equal(left, right)
        if op in ("<", "<=", ">", ">="):
            if _kind(left) != _kind(right) or _kind(left) not in ("number", "string"):
                raise self.error(f"cannot compare {_show(left)} {op} {_show(right)}")
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        if op in ("=~", "!~", "matches"):
            if not isinstance(left, str) or not isinstance(right, str):
                raise self.error(f"{op!r} needs strings, got {_show(left)} and {_show(right)}")
            try:
                found = re.search(right, left) is not None
            except re.error as error:
                raise self.error(f"invalid regular expression {right!r}: {error}") from None
            return not found if op == "!~" else found
        if op == "in":
            if not isinstance(right, list):
                raise self.error(f"'in' needs an array on the right, got {_show(right)}")
            return any(_equal(left, item) for item in right)
        if not isinstance(left, str) or not isinstance(right, str):
            raise self.error(f"{op!r} needs strings, got {_show(left)} and {_show(right)}")
        return {"contains": right in left, "startsWith": left.startswith(right), "endsWith": left.endswith(right)}[op]

    def arith(self, op: str, left: Any, right: Any) -> Any:
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return left + right
        if op == "+" and not self.expr_mode and (isinstance(left, str) or isinstance(right, str)):
            return _go_text(left) + _go_text(right)  # govaluate's addStage: fmt.Sprintf("%v%v") when either is text
        if _kind(left) != "number" or _kind(right) != "number":
            raise self.error(f"{_show(left)} {op} {_show(right)}: arithmetic needs numbers")
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "**":
            return math.pow(left, right)
        if right == 0:
            raise self.error("division by zero")
        if op == "/":
            result = left / right
            return int(result) if self.expr_mode and isinstance(left, int) and isinstance(right, int) and result.is_integer() else result
        return math.fmod(left, right)

    def integers(self, op: str, left: Any, right: Any) -> float:
        """govaluate's bitwise and shift operators, over the numbers as 64-bit integers."""
        a, b = int(self.number(left, op)), int(self.number(right, op))
        mask = (1 << 64) - 1
        results = {"&": a & b, "|": a | b, "^": a ^ b,
                   "<<": ((a & mask) << (b & mask)) & mask, ">>": (a & mask) >> (b & mask)}
        return float(results[op])


def _go_text(value: Any) -> str:
    """A value as Go's `%v` prints it (govaluate's numbers are float64: 3 prints as "3")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and float(value).is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _known(variables: Mapping[str, Any], prefix: str = "") -> list[str]:
    names: list[str] = []
    for key, value in variables.items():
        if isinstance(value, Mapping):
            names += _known(value, f"{prefix}{key}.")
        else:
            names.append(prefix + key)
    return names


def evaluate_when(text: str) -> bool:
    """A task's `when`, already substituted, with Argo's govaluate semantics."""
    result = _Parser(text, None).parse()()
    if not isinstance(result, bool):
        raise ExpressionError(f"expected a boolean from {text!r}, got {_show(result)}")
    return result


def evaluate_expr(text: str, variables: Mapping[str, Any]) -> Any:
    """An expr-lang expression (retryStrategy.expression) over `variables`."""
    return _Parser(text, variables).parse()()


# --- depends ------------------------------------------------------------------------------------

_DEPENDS_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([a-zA-Z0-9][-a-zA-Z0-9]*)(?:\.([A-Za-z]+))?)")


@dataclass(frozen=True)
class DependsRef:
    task: str
    result: str | None  # None: the plain `A` (Succeeded, Skipped or Daemoned; plus continueOn)


class DependsExpr:
    """A parsed `depends` expression; `evaluate(results)` with a function (task, result) -> bool."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.refs: list[DependsRef] = []
        self._tokens = self._tokenize(text)
        self._i = 0
        if not self._tokens:
            raise ExpressionError(f"empty depends expression {text!r}")
        self._tree = self._or()
        if self._i != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._i][1]!r} in depends {text!r}")

    def _tokenize(self, text: str) -> list[tuple[str, Any]]:
        tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _DEPENDS_TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ExpressionError(f"unexpected character {text[pos:].strip()[0]!r} in depends {text!r}")
            op, task, result = match.groups()
            if op:
                tokens.append(("op", op))
            else:
                if result is not None and result not in TASK_RESULTS:
                    raise ExpressionError(
                        f"task result '{result}' for task '{task}' is invalid in depends {text!r}; "
                        f"valid: {', '.join(TASK_RESULTS)}")
                ref = DependsRef(task, result)
                self.refs.append(ref)
                tokens.append(("ref", ref))
            pos = match.end()
        return tokens

    def _peek(self) -> tuple[str, Any] | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def _accept(self, op: str) -> bool:
        token = self._peek()
        if token == ("op", op):
            self._i += 1
            return True
        return False

    def _or(self) -> Callable[[Callable[[DependsRef], bool]], bool]:
        return self._chain("||", self._and, any)

    def _and(self) -> Callable[[Callable[[DependsRef], bool]], bool]:
        return self._chain("&&", self._not, all)

    def _chain(self, op: str, operand: Callable[[], Callable[[Callable[[DependsRef], bool]], bool]],
               combine: Callable[[Iterable[bool]], bool]) -> Callable[[Callable[[DependsRef], bool]], bool]:
        parts = [operand()]
        while self._accept(op):
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        return lambda result_of: combine(part(result_of) for part in parts)  # short-circuits, as && and ||

    def _not(self) -> Callable[[Callable[[DependsRef], bool]], bool]:
        if self._accept("!"):
            inner = self._not()
            return lambda r: not inner(r)
        return self._atom()

    def _atom(self) -> Callable[[Callable[[DependsRef], bool]], bool]:
        token = self._peek()
        if token is None:
            raise ExpressionError(f"depends {self.text!r} ends too early")
        if self._accept("("):
            inner = self._or()
            if not self._accept(")"):
                raise ExpressionError(f"missing ')' in depends {self.text!r}")
            return inner
        if token[0] != "ref":
            raise ExpressionError(f"unexpected {token[1]!r} in depends {self.text!r}")
        self._i += 1
        ref = token[1]
        return lambda r: r(ref)

    @property
    def tasks(self) -> list[str]:
        seen: dict[str, None] = {}
        for ref in self.refs:
            seen.setdefault(ref.task, None)
        return list(seen)

    def evaluate(self, result_of: Callable[[DependsRef], bool]) -> bool:
        return self._tree(result_of)
