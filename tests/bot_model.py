"""An independent model of BetJeeScript, the bots' language (docs/bots.md): tokenizer, parser,
auditor and evaluator in pure Python, written from the document and from the precise semantics
the property tests state (tests/test_bot_properties.py), never from sql/45_bots.sql.

parse(source) gives a Program (its tree as plain dicts shaped like the stored jsonb tree, the
number of its nodes and of its action calls) or raises Refused; evaluate(program, inputs) gives
{"actions": [{"do": name, "args": [...]}], "logs": [...], "error": bool}. Values are Decimal,
str and bool. Markets named by literals are not checked here.

Where docs/bots.md is silent the model reads it mostly as JavaScript does, and says so:
- whitespace is space, tab, CR and LF, and only LF ends a line: a lone CR is a space (it ends
  no `//` comment and may stand in a string); any other character outside a string or a
  comment (vertical tab, form feed, no-break space, ...) is refused;
- operators are read longest first, so `1--1` is `1 --1` (refused: `--` is assignment);
- a semicolon may be left out before a line break, before `}` and at the end of the source
  (a comment holding a line break counts as one); a line that starts with `(` or `-`
  continues the expression before it, as in JavaScript (`log(1)` then `(2)` on the next line
  is a call of a call, refused); `return` ends at a line break;
- a stray `;` is an empty statement (no node); as the branch of an `if` or `else` it is an empty block;
- the branch of an `if` or `else` is any statement, `const` included, and is a scope of its
  own (`if (c) const a = 1` names nothing after it);
- a name is resolved in order: in `{ const a = a + 1 }` the `a` on the right is the outer one;
- a number literal may have leading zeros (`007` is 7) and is never followed directly by a
  letter, a digit or `_`; `1.` and `.5` are refused; a call takes no trailing comma;
- a call evaluates all its arguments, left to right, before it checks their types;
- the 21st log line is not added (the log keeps 20 lines and the run fails)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

MAX_BYTES = 8192
MAX_NODES = 1000
MAX_ACTIONS = 10
MAX_DEPTH = 64  # levels of the tree: the program 1, each node one below the node holding it
MAX_PARENS = 64
MAX_DECIMALS = 18
LIMIT = Decimal(10) ** 30
LOG_LINES = 20
LOG_CHARS = 200
QUANTUM = Decimal(1).scaleb(-MAX_DECIMALS)

READS = {"price": 2, "position": 2, "balance": 0, "avg_price": 3, "volume": 2, "now": 0}
MATHS = {"min": 2, "max": 2, "abs": 1}
ACTIONS = {"buy": 3, "buy_for": 3, "sell": 3, "limit": 5, "cancel_all": 1}
BUILTINS = {**READS, **MATHS, "log": 1, **ACTIONS}
# which arguments of a read are markets/outcomes (strings) and which minutes (numbers)
READ_KINDS = {"price": "so", "position": "so", "balance": "", "avg_price": "som",
              "volume": "sm", "now": ""}
KEYWORDS = frozenset({"const", "if", "else", "return", "true", "false"})
RESERVED = frozenset([
    "for", "while", "do", "function", "class", "new", "this", "eval", "let", "var", "switch",
    "case", "break", "continue", "try", "catch", "throw", "typeof", "instanceof", "in", "of",
    "delete", "void", "yield", "async", "await", "import", "export", "with", "debugger",
    "default", "extends", "super", "null", "undefined"])

# operators of the language; the others (JavaScript's) are read longest first and refused
OPERATORS = ["===", "!==", "<=", ">=", "&&", "||", "(", ")", "{", "}", ";", ",", "?", ":",
             "=", "!", "<", ">", "+", "-", "*", "/"]
FOREIGN = [">>>=", "...", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=", "=>", "==", "!=",
           "<<", ">>", "**", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "??",
           "?."]
ALL_OPERATORS = sorted(OPERATORS + FOREIGN, key=len, reverse=True)
ASSIGNING = {"++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "**=", "<<=", ">>=",
             ">>>=", "&&=", "||=", "??="}
PRECEDENCE = {"||": 1, "&&": 2, "===": 3, "!==": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6}
STRING_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n"}


@contextmanager
def _deep() -> Iterator[None]:
    """Deeply nested parentheses add no node: 4,000 of them fit in a source, and each is a
    dozen Python frames here (Python 3.11 keeps Python-to-Python calls off the C stack).
    The limit is raised for the call only (hypothesis sets its own around a test)."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 200_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


class Refused(Exception):
    """The program is refused at submission (BJ040)."""


class RunError(Exception):
    """The run stops with an error."""


class _Return(Exception):
    pass


@dataclass
class Token:
    kind: str           # num, str, name, kw, op, eof
    value: Any
    line: int
    col: int
    newline: bool       # a line break (or a comment holding one) since the previous token


@dataclass
class Program:
    tree: dict
    nodes: int
    actions: int


def _is_letter(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z" or c == "_"


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(source)
    line, line_start = 1, 0
    newline = False
    parens = 0  # parentheses open here (of calls and of grouping)

    def refuse(what: str, at: int) -> Refused:
        return Refused(f"{what} at {line}:{at - line_start + 1}")

    while i < n:
        c = source[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\n":
            i += 1
            line, line_start, newline = line + 1, i, True
            continue
        if source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
            continue
        if source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise refuse("unterminated comment", i)
            for j in range(i, end):
                if source[j] == "\n":
                    line, line_start, newline = line + 1, j + 1, True
            i = end + 2
            continue
        start, col = i, i - line_start + 1
        if _is_digit(c):
            while i < n and _is_digit(source[i]):
                i += 1
            if i < n and source[i] == ".":
                i += 1
                if not (i < n and _is_digit(source[i])):
                    raise refuse("a number needs digits after `.`", start)
                while i < n and _is_digit(source[i]):
                    i += 1
            if i < n and (_is_letter(source[i]) or _is_digit(source[i]) or source[i] == "."):
                raise refuse("malformed number", start)
            text = source[start:i]
            if "." in text and len(text.split(".")[1]) > MAX_DECIMALS:
                raise refuse("a number of more than 18 decimals", start)
            value = Decimal(text)
            if value >= LIMIT:
                raise refuse("a number too large", start)
            tokens.append(Token("num", value, line, col, newline))
        elif _is_letter(c):
            while i < n and (_is_letter(source[i]) or _is_digit(source[i])):
                i += 1
            word = source[start:i]
            if word in RESERVED:
                raise refuse(f"`{word}` is not allowed", start)
            tokens.append(Token("kw" if word in KEYWORDS else "name", word, line, col, newline))
        elif c in "\"'":
            i += 1
            chars = []
            while True:
                if i >= n or source[i] == "\n":
                    raise refuse("unterminated string", start)
                ch = source[i]
                if ch == c:
                    i += 1
                    break
                if ch == "\\":
                    escaped = source[i + 1:i + 2]
                    if escaped not in STRING_ESCAPES:
                        raise refuse("an escape other than \\\\ \\\" \\' \\n", i)
                    chars.append(STRING_ESCAPES[escaped])
                    i += 2
                else:
                    chars.append(ch)
                    i += 1
            tokens.append(Token("str", "".join(chars), line, col, newline))
        else:
            op = next((o for o in ALL_OPERATORS if source.startswith(o, i)), None)
            if op is None:
                raise refuse(f"character {c!r} is not allowed", start)
            if op in ASSIGNING:
                raise refuse(f"assignment is not allowed: `{op}`", start)
            if op not in OPERATORS:
                raise refuse(f"`{op}` is not allowed", start)
            if op == "(":
                parens += 1
                if parens > MAX_PARENS:
                    raise refuse(f"parentheses nested more than {MAX_PARENS} deep", start)
            elif op == ")":
                parens -= 1
            i += len(op)
            tokens.append(Token("op", op, line, col, newline))
        newline = False
    tokens.append(Token("eof", None, line, i - line_start + 1, newline))
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.nodes = 0
        self.actions = 0
        self.scopes: list[set[str]] = []

    # -- tokens
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, value: Any = None) -> bool:
        t = self.peek()
        return t.kind == kind and (value is None or t.value == value)

    def refuse(self, what: str, token: Token | None = None) -> Refused:
        t = token or self.peek()
        shown = "end of source" if t.kind == "eof" else f"`{t.value}`"
        return Refused(f"{what}: {shown} at {t.line}:{t.col}")

    def expect(self, kind: str, value: Any = None) -> Token:
        if not self.at(kind, value):
            raise self.refuse(f"expected {value or kind}")
        return self.next()

    def node(self, kind: str, token: Token, **fields: Any) -> dict:
        self.nodes += 1
        return {"t": kind, "at": [token.line, token.col], **fields}

    # -- statements
    def program(self) -> dict:
        first = self.peek()
        self.scopes.append(set())
        body = []
        while not self.at("eof"):
            if (statement := self.statement()) is not None:
                body.append(statement)
        self.scopes.pop()
        return self.node("program", first, body=body)

    def end_of_statement(self) -> None:
        if self.at("op", ";"):
            self.next()
        elif not (self.at("eof") or self.at("op", "}") or self.peek().newline):
            raise self.refuse("expected `;` or a new line")

    def branch(self) -> dict | None:
        """The statement of an if or an else: a scope of its own; an empty statement there is an
        empty block."""
        self.scopes.append(set())
        statement = self.statement()
        self.scopes.pop()
        if statement is None:
            statement = self.node("block", self.tokens[self.pos - 1], body=[])
        return statement

    def statement(self) -> dict | None:
        """A statement, or None for an empty one (`;`)."""
        t = self.peek()
        if t.kind == "op" and t.value == ";":
            self.next()
            return None
        if t.kind == "kw" and t.value == "const":
            self.next()
            name = self.next()
            if name.kind != "name":
                raise self.refuse("expected a name", name)
            if name.value in BUILTINS:
                raise self.refuse("a built-in cannot be declared", name)
            self.expect("op", "=")
            value = self.expression()
            if name.value in self.scopes[-1]:
                raise self.refuse("a name declared twice in one block", name)
            self.scopes[-1].add(name.value)
            self.end_of_statement()
            return self.node("const", t, name=name.value, value=value)
        if t.kind == "kw" and t.value == "if":
            self.next()
            self.expect("op", "(")
            test = self.expression()
            self.expect("op", ")")
            then = self.branch()
            otherwise = None
            if self.at("kw", "else"):
                self.next()
                otherwise = self.branch()
            return self.node("if", t, test=test, then=then, **{"else": otherwise})
        if t.kind == "op" and t.value == "{":
            self.next()
            self.scopes.append(set())
            body = []
            while not self.at("op", "}"):
                if self.at("eof"):
                    raise self.refuse("expected `}`")
                if (statement := self.statement()) is not None:
                    body.append(statement)
            self.next()
            self.scopes.pop()
            return self.node("block", t, body=body)
        if t.kind == "kw" and t.value == "return":
            self.next()
            if not (self.at("op", ";") or self.at("op", "}") or self.at("eof")
                    or self.peek().newline):
                raise self.refuse("return takes no value")
            if self.at("op", ";"):
                self.next()
            return self.node("return", t)
        if t.kind == "kw" and t.value == "else":
            raise self.refuse("else without if")
        expr = self.expression()
        if self.at("op", "="):
            raise self.refuse("assignment is not allowed")
        self.end_of_statement()
        return self.node("expr", t, expr=expr)

    # -- expressions
    def expression(self) -> dict:
        start = self.peek()
        test = self.binary(1)
        if not self.at("op", "?"):
            return test
        self.next()
        then = self.expression()
        self.expect("op", ":")
        otherwise = self.expression()
        return self.node("cond", start, test=test, then=then, **{"else": otherwise})

    def binary(self, level: int) -> dict:
        if level > 6:
            return self.unary()
        left = self.binary(level + 1)
        while self.at("op") and PRECEDENCE.get(self.peek().value) == level:
            op = self.next()
            right = self.binary(level + 1)
            kind = "logical" if op.value in ("&&", "||") else "binary"
            left = self.node(kind, op, op=op.value, left=left, right=right)
        return left

    def unary(self) -> dict:
        t = self.peek()
        if t.kind == "op" and t.value in ("!", "-"):
            self.next()
            return self.node("unary", t, op=t.value, arg=self.unary())
        expr = self.primary()
        if self.at("op", "("):
            raise self.refuse("a call of anything but a built-in")
        return expr

    def primary(self) -> dict:
        t = self.next()
        if t.kind == "num":
            return self.node("num", t, v=t.value)
        if t.kind == "str":
            return self.node("str", t, v=t.value)
        if t.kind == "kw" and t.value in ("true", "false"):
            return self.node("bool", t, v=t.value == "true")
        if t.kind == "op" and t.value == "(":
            expr = self.expression()
            self.expect("op", ")")
            return expr
        if t.kind == "name":
            if self.at("op", "("):
                if t.value not in BUILTINS:
                    raise self.refuse("a call of anything but a built-in", t)
                self.next()
                args = []
                if not self.at("op", ")"):
                    args.append(self.expression())
                    while self.at("op", ","):
                        self.next()
                        args.append(self.expression())
                self.expect("op", ")")
                if len(args) != BUILTINS[t.value]:
                    raise self.refuse(f"{t.value} takes {BUILTINS[t.value]} arguments", t)
                if t.value in ACTIONS:
                    self.actions += 1
                return self.node("call", t, fn=t.value, args=args)
            if not any(t.value in scope for scope in self.scopes):
                raise self.refuse("unknown name", t)
            return self.node("name", t, name=t.value)
        raise self.refuse("expected an expression", t)


def depth(tree: dict) -> int:
    """Levels of a tree: the root 1, each node one below the node that holds it."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        for key in ("body", "args", "value", "test", "then", "else", "expr", "arg", "left", "right"):
            child = node.get(key)
            for c in child if isinstance(child, list) else [child]:
                if isinstance(c, dict):
                    stack.append((c, level + 1))
    return deepest


def parse(source: str) -> Program:
    """The audited program, or Refused."""
    if len(source.encode("utf-8")) > MAX_BYTES:
        raise Refused("the source is over 8 KB")
    parser = _Parser(tokenize(source))
    with _deep():
        tree = parser.program()
    if parser.nodes > MAX_NODES:
        raise Refused(f"a tree of more than {MAX_NODES} nodes")
    if depth(tree) > MAX_DEPTH:
        raise Refused(f"nesting deeper than {MAX_DEPTH} levels")
    if parser.actions > MAX_ACTIONS:
        raise Refused(f"more than {MAX_ACTIONS} actions")
    return Program(tree, parser.nodes, parser.actions)


# ------------------------------------------------------------------------------------------
# values

def is_number(v: Any) -> bool:
    return isinstance(v, Decimal)


def text(v: Any) -> str:
    """A value as `+` and log write it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    s = format(v, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def truthy(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v != ""
    return v != 0


def _in_range(v: Decimal) -> Decimal:
    if abs(v) >= LIMIT:
        raise RunError("number out of range")
    return v


def _numbers(op: str, a: Any, b: Any) -> None:
    if not (is_number(a) and is_number(b)):
        raise RunError(f"{op} takes numbers")


def arith(op: str, a: Any, b: Any) -> Any:
    """`+ - * /` (run inside evaluate's exact decimal context)."""
    if op == "+":
        if isinstance(a, str) or isinstance(b, str):
            return text(a) + text(b)
        _numbers(op, a, b)
        return _in_range(a + b)
    _numbers(op, a, b)
    if op == "-":
        return _in_range(a - b)
    if op == "*":
        return _in_range((a * b).quantize(QUANTUM, rounding=ROUND_HALF_UP))
    if b == 0:
        raise RunError("division by zero")
    q = Fraction(a) / Fraction(b) * 10 ** MAX_DECIMALS
    whole = (abs(q.numerator) * 2 + q.denominator) // (2 * q.denominator)
    return _in_range(Decimal(whole if q >= 0 else -whole).scaleb(-MAX_DECIMALS))


def compare(op: str, a: Any, b: Any) -> bool:
    if op in ("===", "!=="):
        same = (type(a) is type(b)) and a == b
        return same if op == "===" else not same
    if not ((is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise RunError(f"{op} takes two numbers or two strings")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _input(v: Any) -> Any:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, Decimal)):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    raise RunError(f"an input of type {type(v).__name__}")


class _Run:
    def __init__(self, inputs: dict[str, Any]) -> None:
        self.inputs = inputs
        self.actions: list[dict] = []
        self.logs: list[str] = []
        self.scopes: list[dict[str, Any]] = []

    def block(self, body: list[dict]) -> None:
        self.scopes.append({})
        try:
            for statement in body:
                self.statement(statement)
        finally:
            self.scopes.pop()

    def statement(self, s: dict) -> None:
        t = s["t"]
        if t == "const":
            self.scopes[-1][s["name"]] = self.expr(s["value"])
        elif t == "if":
            branch = s["then"] if truthy(self.expr(s["test"])) else s["else"]
            if branch is not None:
                self.block([branch])
        elif t == "block":
            self.block(s["body"])
        elif t == "return":
            raise _Return
        elif t == "expr":
            self.expr(s["expr"])
        else:
            raise AssertionError(t)

    def expr(self, e: dict) -> Any:
        t = e["t"]
        if t in ("num", "str", "bool"):
            return e["v"]
        if t == "name":
            for scope in reversed(self.scopes):
                if e["name"] in scope:
                    return scope[e["name"]]
            raise AssertionError(f"unbound {e['name']}")
        if t == "unary":
            v = self.expr(e["arg"])
            if e["op"] == "!":
                return not truthy(v)
            if not is_number(v):
                raise RunError("unary - takes a number")
            return _in_range(-v)
        if t == "logical":
            left = self.expr(e["left"])
            if truthy(left) == (e["op"] == "||"):
                return left
            return self.expr(e["right"])
        if t == "binary":
            left = self.expr(e["left"])
            right = self.expr(e["right"])
            if e["op"] in ("+", "-", "*", "/"):
                return arith(e["op"], left, right)
            return compare(e["op"], left, right)
        if t == "cond":
            return self.expr(e["then"] if truthy(self.expr(e["test"])) else e["else"])
        if t == "call":
            return self.call(e["fn"], [self.expr(a) for a in e["args"]])
        raise AssertionError(t)

    def call(self, fn: str, args: list[Any]) -> Any:
        if fn in ACTIONS:
            self.actions.append({"do": fn, "args": args})
            return True
        if fn == "log":
            if len(self.logs) >= LOG_LINES:
                raise RunError("more than 20 log lines")
            self.logs.append(text(args[0])[:LOG_CHARS])
            return True
        if fn in MATHS:
            if not all(is_number(a) for a in args):
                raise RunError(f"{fn} takes numbers")
            if fn == "abs":
                return abs(args[0])
            a, b = args
            return min(a, b) if fn == "min" else max(a, b)
        for kind, a in zip(READ_KINDS[fn], args, strict=True):
            if kind == "s" and not isinstance(a, str):
                raise RunError(f"{fn}: a market or outcome is a string")
            if kind == "m" and not (is_number(a) and a == a.to_integral_value()
                                    and 1 <= a <= 1440):
                raise RunError(f"{fn}: minutes are a whole number from 1 to 1440")
        key = f"{fn}({','.join(text(a) for a in args)})"
        if key not in self.inputs:
            raise RunError(f"no input {key}")
        return _input(self.inputs[key])


def evaluate(program: Program, inputs: dict[str, Any]) -> dict:
    run = _Run(inputs)
    error = False
    with _deep(), localcontext() as ctx:
        ctx.prec = 200      # exact: no value here has more than about 100 digits
        try:
            run.block(program.tree["body"])
        except _Return:
            pass
        except RunError:
            error = True
    return {"actions": [] if error else run.actions, "logs": run.logs, "error": error}


def run_source(source: str, inputs: dict[str, Any]) -> dict:
    return evaluate(parse(source), inputs)
