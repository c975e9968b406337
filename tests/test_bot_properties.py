"""BetJeeScript (docs/bots.md) in the database (bj.bot_parse, bj.bot_eval) against the
independent model in tests/bot_model.py:

- random valid programs (consts, ifs, blocks, returns, every built-in and action, markets and
  outcomes literal and computed, number literals up to 18 decimals and near 1e30, strings with
  escapes and non-ASCII text, ternaries, &&/||, comparisons, division by zero now and then, ill
  typed operands now and then) give the same actions (numbers compared as decimals), the same
  log and the same error/no error, with inputs for every key they can read; the stored tree has
  as many nodes as the model counts;
- random sources (soups of the language's and JavaScript's tokens, valid programs with
  mutations, one fragment repeated up to 1,200 times, random text) and random bytes decoded as UTF-8 are accepted exactly when the model
  accepts them, refused with BJ040 and nothing else, each in under 2 seconds; what both accept
  runs the same;
- the edges, one by one: the limits (8 KB, 1,000 nodes, 10 actions, 18 decimals, 1e30, 20 log
  lines of 200 characters), deep nesting, rounding, the text of a number, string order.

Markets are not checked (bot_parse's second argument false)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg.types.json import set_json_loads

from tests.bot_model import Refused, evaluate, parse
from tests.conftest import deterministic

D = Decimal
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
            HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.large_base_example]
VALID_SETTINGS = settings(max_examples=250, suppress_health_check=SUPPRESS)
SOUP_SETTINGS = settings(max_examples=300, suppress_health_check=SUPPRESS)
SECONDS = 2.0

MARKETS = ("m1", "m2")
OUTCOMES = ("YES", "NO")
MINUTES = (1, 30, 60, 1440)


def _keys() -> list[str]:
    keys = ["balance()", "now()"]
    for m in MARKETS:
        for o in OUTCOMES:
            keys += [f"price({m},{o})", f"position({m},{o})"]
            keys += [f"avg_price({m},{o},{n})" for n in MINUTES]
        keys += [f"volume({m},{n})" for n in MINUTES]
    return keys


KEYS = _keys()
PRICES = ["0", "0.5", "0.25", "0.75", "0.333333", "1", "0.010000", "0.99"]
VALUES = {
    "price": PRICES, "avg_price": PRICES,
    "position": ["0", "10", "-5", "2.5", "100.123456", "-0.000001"],
    "balance": ["0", "1000", "250.75", "0.000001"],
    "volume": ["0", "1234.5", "99", "0.50"],
    "now": ["1767225600", "1800000000"],
}
# what the edge cases and the soups run with
FIXED_INPUTS = {k: D(VALUES[k.split("(")[0]][1]) for k in KEYS}


def inputs_strategy() -> st.SearchStrategy[dict[str, Decimal]]:
    return st.fixed_dictionaries(
        {k: st.sampled_from(VALUES[k.split("(")[0]]).map(D) for k in KEYS})


# ------------------------------------------------------------------------------------------
# the database side, and comparing it with the model

def _loads(s: str | bytes) -> Any:
    return json.loads(s, parse_float=Decimal, parse_int=Decimal)


@pytest.fixture
def bots(db: psycopg.Connection) -> psycopg.Connection:
    set_json_loads(_loads, db)
    return db


def inputs_json(inputs: dict[str, Any]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}: {format(v, 'f')}" for k, v in inputs.items()) + "}"


def value_key(v: Any) -> tuple:
    """A value compared by type and value (a Decimal 1 is not True)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, Decimal)):
        return ("num", Decimal(v))
    if isinstance(v, str):
        return ("str", v)
    return ("other", repr(v))


def model_outcome(result: dict) -> dict:
    return {"actions": [(a["do"], [value_key(x) for x in a["args"]]) for a in result["actions"]],
            "logs": result["logs"], "error": result["error"]}


def db_outcome(result: dict) -> dict:
    assert set(result) >= {"actions", "logs", "error"}, result
    for a in result["actions"]:
        assert set(a) == {"do", "args"}, a
    assert result["error"] is None or isinstance(result["error"], str), result
    return {"actions": [(a["do"], [value_key(x) for x in a["args"]]) for a in result["actions"]],
            "logs": result["logs"], "error": result["error"] is not None}


def count_nodes(tree: Any) -> int:
    """The objects of a stored tree that are nodes (have a kind), without recursion."""
    count, stack = 0, [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += "t" in item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


@dataclass
class DbRun:
    accepted: bool
    message: str | None = None
    tree: Any = None
    result: dict | None = None


def db_run(db: psycopg.Connection, source: str, inputs: dict[str, Any]) -> DbRun:
    """bot_parse, then (when accepted) bot_eval; refusals must be BJ040, each call quick."""
    start = time.monotonic()
    try:
        row = db.execute("select t::text as tree from bj.bot_parse(%s, false) as t",
                         [source]).fetchone()
    except psycopg.Error as e:
        elapsed = time.monotonic() - start
        assert e.sqlstate == "BJ040", f"bot_parse failed with {e.sqlstate}, not BJ040: {e}"
        assert elapsed < SECONDS, f"bot_parse took {elapsed:.2f} s"
        return DbRun(False, " / ".join(filter(None, [e.diag.message_primary, e.diag.message_detail,
                                                      e.diag.message_hint])))
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS, f"bot_parse took {elapsed:.2f} s"
    tree = row["tree"]
    start = time.monotonic()
    try:
        result = db.execute("select bj.bot_eval(%s::jsonb, %s::jsonb) as r",
                            [tree, inputs_json(inputs)]).fetchone()["r"]
    except psycopg.Error as e:
        raise AssertionError(f"bot_eval raised {e.sqlstate}: {e}") from e
    elapsed = time.monotonic() - start
    assert elapsed < SECONDS, f"bot_eval took {elapsed:.2f} s"
    return DbRun(True, tree=_loads(tree), result=result)


def model_run(source: str, inputs: dict[str, Any]) -> tuple[Any, str | None, dict | None]:
    try:
        program = parse(source)
    except Refused as e:
        return None, str(e), None
    return program, None, evaluate(program, inputs)


def check(db: psycopg.Connection, source: str, inputs: dict[str, Any] | None = None) -> DbRun:
    """The database and the model agree on the source: refused by both, or accepted by both
    with the same number of nodes and the same run."""
    inputs = FIXED_INPUTS if inputs is None else inputs
    program, refusal, expected = model_run(source, inputs)
    got = db_run(db, source, inputs)
    if program is None:
        assert not got.accepted, f"the model refuses ({refusal}); the database accepts"
        return got
    assert got.accepted, f"the model accepts; the database refuses: {got.message}"
    assert count_nodes(got.tree) == program.nodes, "the stored tree's nodes"
    assert db_outcome(got.result) == model_outcome(expected), (
        f"database {got.result}\nmodel    {expected}")
    return got


# ------------------------------------------------------------------------------------------
# valid programs

@dataclass
class E:
    """An expression's source and its precedence (0 ternary ... 7 unary, 8 primary)."""
    text: str
    prec: int


PREC = {"||": 1, "&&": 2, "===": 3, "!==": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
        "+": 5, "-": 5, "*": 6, "/": 6}
NAMES = ["a", "b", "c", "x", "y", "total", "p_1", "_t", "q9", "format", "iff", "newt", "letter",
         "done", "constant", "returned", "While", "IF", "Const", "inside", "office", "tryit",
         "Infinity", "TRUE", "elsewhere", "variable", "thisone", "forward"]
STRING_CHARS = "abcXYZ m1YES_-.,:;()[]{}+*/=<>!?`$#@%&|~^\"'\\\n\té߀Ω日😀\u00a0\u2028"
SPECIAL_NUMBERS = ["0", "0.0", "1.50", "0.1", "0.2", "0.3", "0.000000000000000001", "0.5",
                   "999999999999999999999999999999", "100.000", "123456789012.123456789012345678",
                   "500000000000000000000000000000", "0.000000000000000005"]


class Gen:
    """Draws a valid program, keeping track of the consts in scope (and their types) and of
    the actions written (at most 10)."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.scopes: list[dict[str, str]] = [{}]
        self.actions = 0

    def chance(self, n: int) -> bool:
        """True one time in n."""
        return self.draw(st.integers(0, n - 1)) == 0

    def pick(self, items: Any) -> Any:
        return self.draw(st.sampled_from(list(items)))

    # -- rendering
    def wrap(self, e: E) -> E:
        return E(f"({e.text})", 8) if self.chance(12) else e

    def binary(self, op: str, left: E, right: E) -> E:
        p = PREC[op]
        lt = left.text if left.prec >= p else f"({left.text})"
        rt = right.text if right.prec > p else f"({right.text})"
        return self.wrap(E(f"{lt} {op} {rt}", p))

    def unary(self, op: str, arg: E) -> E:
        t = arg.text if arg.prec >= 7 else f"({arg.text})"
        if op == "-" and t.startswith("-"):
            t = " " + t
        return self.wrap(E(op + t, 7))

    def cond(self, test: E, then: E, otherwise: E) -> E:
        tt = test.text if test.prec >= 1 else f"({test.text})"
        return self.wrap(E(f"{tt} ? {then.text} : {otherwise.text}", 0))

    def call(self, fn: str, *args: E) -> E:
        sep = self.pick([", ", ",", " , "])
        return E(f"{fn}({sep.join(a.text for a in args)})", 8)

    # -- names
    def visible(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for scope in self.scopes:
            names.update(scope)
        return names

    def named(self, *types: str) -> E | None:
        names = [n for n, t in self.visible().items() if t in types]
        return E(self.pick(names), 8) if names else None

    # -- literals
    def number(self) -> E:
        kind = self.draw(st.integers(0, 9))
        if kind <= 3:
            text = str(self.draw(st.integers(0, 100)))
        elif kind <= 6:
            places = self.draw(st.integers(1, 6))
            text = f"{self.draw(st.integers(0, 1000))}.{self.draw(st.integers(0, 10 ** places - 1)):0{places}d}"
        elif kind == 7:
            text = f"{self.draw(st.integers(0, 10))}.{self.draw(st.integers(0, 10 ** 18 - 1)):018d}"
        elif kind == 8:
            text = str(self.draw(st.integers(10 ** 20, 10 ** 30 - 1)))
        else:
            text = self.pick(SPECIAL_NUMBERS)
        return E(text, 8)

    def string(self, value: str | None = None) -> E:
        if value is None:
            value = self.draw(st.text(st.sampled_from(STRING_CHARS), max_size=8))
        quote = self.pick(["'", '"'])
        out = []
        for ch in value:
            if ch == "\\":
                out.append("\\\\")
            elif ch == "\n":
                out.append("\\n")
            elif ch == quote or (ch in "'\"" and self.chance(3)):
                out.append("\\" + ch)
            else:
                out.append(ch)
        return E(quote + "".join(out) + quote, 8)

    # -- typed expressions
    def market(self) -> E:
        k = self.draw(st.integers(0, 19))
        if k == 0:
            return self.pick([self.string("m3"), self.number(), E("true", 8)])  # no such input
        if k <= 2:
            digit = self.pick(["1", "2", "(3 - 1)", "2.0", "(0.5 * 2)", "(4 / 4)"])
            return self.binary("+", self.string("m"), E(digit, 8))
        if k <= 5 and (name := self.named("market")):
            return name
        return self.string(self.pick(MARKETS))

    def outcome(self) -> E:
        k = self.draw(st.integers(0, 19))
        if k == 0:
            return self.pick([self.string("yes"), self.number()])
        if k <= 2:
            return self.cond(self.boolean(0), self.string("YES"), self.string("NO"))
        if k <= 4 and (name := self.named("outcome")):
            return name
        return self.string(self.pick(OUTCOMES))

    def minutes(self) -> E:
        k = self.draw(st.integers(0, 14))
        if k == 0:
            return self.pick([E(t, 8) for t in ("0", "1441", "2.5", "-30")] + [self.string("30")])
        if k <= 2:
            return E(self.pick(["15 * 2", "120 / 2", "1440.0", "29 + 1", "60.000"]), 5)
        if k <= 3 and (name := self.named("minutes")):
            return name
        return E(str(self.pick(MINUTES)), 8)

    def read(self) -> E:
        fn = self.pick(["price", "position", "balance", "avg_price", "volume", "now"])
        if fn == "price" or fn == "position":
            return self.call(fn, self.market(), self.outcome())
        if fn == "avg_price":
            return self.call(fn, self.market(), self.outcome(), self.minutes())
        if fn == "volume":
            return self.call(fn, self.market(), self.minutes())
        return self.call(fn)

    def num(self, depth: int) -> E:
        k = self.draw(st.integers(0, 15 if depth > 0 else 3))
        if k == 0:
            return self.number()
        if k == 1:
            return self.named("num", "minutes") or self.number()
        if k == 2:
            return self.read()
        if k == 3:
            return self.unary("-", self.number()) if self.chance(2) else self.number()
        d = depth - 1
        if k <= 7:
            op = self.pick(["+", "-", "*", "/"])
            right = self.num(d)
            if op == "/" and self.chance(6):
                right = self.pick([E("0", 8), E("0.000", 8), self.binary("-", right, right)])
            return self.binary(op, self.num(d), right)
        if k == 8:
            return self.unary("-", self.num(d))
        if k == 9:
            fn = self.pick(["min", "max", "abs"])
            return self.call(fn, *[self.num(d) for _ in range(1 if fn == "abs" else 2)])
        if k == 10:
            return self.cond(self.boolean(d), self.num(d), self.num(d))
        if k == 11:
            return self.binary(self.pick(["&&", "||"]), self.num(d), self.num(d))
        if k == 12 and self.chance(4):   # ill typed now and then
            return self.binary(self.pick(["+", "-", "*", "<"]), self.any(d), self.any(d))
        if k == 13:
            return self.unary("-", self.any(d)) if self.chance(5) else self.read()
        return self.read()

    def str_(self, depth: int) -> E:
        k = self.draw(st.integers(0, 9 if depth > 0 else 2))
        if k == 0:
            return self.string()
        if k == 1:
            return self.named("str", "market", "outcome") or self.string()
        if k == 2:
            return self.market() if self.chance(2) else self.outcome()
        d = depth - 1
        if k <= 5:
            left, right = self.str_(d), self.any(d)
            if self.chance(2):
                left, right = right, left
            return self.binary("+", left, right)
        if k == 6:
            return self.cond(self.boolean(d), self.str_(d), self.str_(d))
        if k == 7:
            return self.binary(self.pick(["&&", "||"]), self.str_(d), self.str_(d))
        return self.string()

    def boolean(self, depth: int) -> E:
        k = self.draw(st.integers(0, 11 if depth > 0 else 1))
        if k == 0:
            return E(self.pick(["true", "false"]), 8)
        if k == 1:
            return self.named("bool") or E(self.pick(["true", "false"]), 8)
        d = depth - 1
        if k <= 3:
            return self.binary(self.pick(["<", "<=", ">", ">="]), self.num(d), self.num(d))
        if k == 4:
            return self.binary(self.pick(["<", "<=", ">", ">="]), self.str_(d), self.str_(d))
        if k <= 6:
            return self.binary(self.pick(["===", "!=="]), self.any(d), self.any(d))
        if k == 7:
            return self.unary("!", self.any(d))
        if k == 8:
            return self.binary(self.pick(["&&", "||"]), self.boolean(d), self.boolean(d))
        if k == 9:
            return self.cond(self.boolean(d), self.boolean(d), self.boolean(d))
        if k == 10 and self.chance(3):
            return self.effect(d)
        return self.binary(self.pick(["<", ">="]), self.read(), self.num(d))

    def any(self, depth: int) -> E:
        return self.pick([self.num, self.str_, self.boolean])(depth)

    def typed(self, ty: str, depth: int) -> E:
        return {"num": self.num, "str": self.str_, "bool": self.boolean}[ty](depth)

    def action(self, depth: int) -> E:
        self.actions += 1
        fn = self.pick(["buy", "buy_for", "sell", "limit", "cancel_all"])
        if fn == "cancel_all":
            return self.call(fn, self.market())
        amount = self.num(depth) if not self.chance(10) else self.any(depth)
        if fn == "limit":
            side = self.string(self.pick(["buy", "sell"])) if not self.chance(10) else self.any(0)
            return self.call(fn, self.market(), self.outcome(), side, self.num(depth), amount)
        return self.call(fn, self.market(), self.outcome(), amount)

    def effect(self, depth: int) -> E:
        """log(...) or an action (while fewer than 10 are written)."""
        if self.actions < 10 and self.chance(2):
            return self.action(depth)
        return self.call("log", self.any(depth))

    # -- statements: (source, needs a terminator)
    def statement(self, depth: int) -> tuple[str, bool]:
        k = self.draw(st.integers(0, 19))
        if k <= 5:
            ty = self.pick(["num", "num", "str", "bool", "market", "outcome", "minutes"])
            value = {"market": self.market, "outcome": self.outcome,
                     "minutes": self.minutes}.get(ty, lambda: self.typed(ty, 2))()
            outer = [n for scope in self.scopes[:-1] for n in scope if n not in self.scopes[-1]]
            if outer and self.chance(3):
                name = self.pick(outer)
            else:
                name = self.pick(NAMES)
                while name in self.scopes[-1]:
                    name += str(self.draw(st.integers(0, 9)))
            self.scopes[-1][name] = ty
            return f"const {name} = {value.text}", True
        if k <= 8 and depth > 0:
            test = self.any(2) if self.chance(3) else self.boolean(2)
            then, then_open = self.substatement(depth - 1)
            text = f"if ({test.text}) {then}"
            if self.chance(2):
                if then_open:
                    text += self.pick([";", "\n", "; "])
                otherwise, open_ = self.substatement(depth - 1)
                return text + self.pick([" ", "\n"]) + "else " + otherwise, open_
            return text, then_open
        if k == 9 and depth > 0:
            return self.block(depth - 1), False
        if k == 10 and self.chance(4):
            return "return", True
        if k <= 16:
            return self.effect(2).text, True
        return self.any(2).text, True

    def substatement(self, depth: int) -> tuple[str, bool]:
        """The statement of an if or an else (a scope of its own)."""
        if self.chance(2):
            return self.block(depth), False
        self.scopes.append({})
        statement = self.statement(depth)
        self.scopes.pop()
        return statement

    def block(self, depth: int) -> str:
        self.scopes.append({})
        body = self.body(depth, 4)
        self.scopes.pop()
        return "{" + self.pick(["\n", " ", ""]) + body + self.pick(["\n", " ", ""]) + "}"

    def body(self, depth: int, most: int) -> str:
        statements = [self.statement(depth) for _ in range(self.draw(st.integers(0, most)))]
        out = []
        for i, (text, open_) in enumerate(statements):
            out.append(self.pick(["", "", "  ", "\t"]) + text)
            following = statements[i + 1][0] if i + 1 < len(statements) else ""
            if open_:
                if following.startswith(("(", "-")) or self.chance(2):
                    out.append(";")
                else:
                    out.append(self.pick(["\n", " // a comment: ünï ;)\n", "\r\n", "\r\r\n"]))
                    continue
            out.append(self.pick(["\n", " ", "", "\n\n", " /* a /* comment\n */ ",
                                  " // more;\n", " ;\n", ";"]))
        return "".join(out)


@st.composite
def programs(draw: Any) -> str:
    gen = Gen(draw)
    source = gen.body(draw(st.integers(0, 3)), 12)
    return source + draw(st.sampled_from(["", "\n"]))


@deterministic
@VALID_SETTINGS
@given(source=programs(), inputs=inputs_strategy())
def test_valid_programs_run_as_the_model_runs_them(bots, source, inputs):
    try:
        parse(source)
    except Refused as e:
        # the generator writes valid programs; only a rare one is too big
        assert "more than" in str(e), f"the generator wrote a refused program: {e}"
        assume(False)
    check(bots, source, inputs)


# ------------------------------------------------------------------------------------------
# random sources

LANGUAGE_TOKENS = [
    "const", "if", "else", "return", "true", "false", "a", "b", "x1", "_", "format", "iff",
    "log", "buy", "buy_for", "sell", "limit", "cancel_all", "price", "position", "balance",
    "avg_price", "volume", "now", "min", "max", "abs", "0", "1", "2.5", "0.000000000000000001",
    "999999999999999999999999999999", '"m1"', "'YES'", '"NO"', '"a\\nb"', '""', "'\\''",
    "(", ")", "{", "}", ";", ",", "?", ":", "=", "===", "!==", "<", "<=", ">", ">=", "+", "-",
    "*", "/", "!", "&&", "||", "// c\n", "/* c */", "/*\n*/", "\n", " ", "\t", "\r\n",
]
FOREIGN_TOKENS = [
    "let", "var", "function", "=>", ".", "[", "]", "==", "!=", "++", "--", "+=", "-=", "while",
    "for", "do", "new", "this", "eval", "`t`", "`", "/re/g", "%", "**", "&", "|", "^", "~",
    "??", "?.", "...", "null", "undefined", "typeof", "class", "in", "of", "$", "@", "#", "\\",
    "Const", "IF", "While", "NaN", "enum", "static", "1e5", "0x1F", ".5", "1.", "007", "1_000",
    "0.1234567890123456789", "1000000000000000000000000000000", "'\\x41'", '"\\t"', '"open',
    "'a\nb'", "/* open", "\u00a0", "é", "\u2028", "\ufeff", "\f", "\v", "\r", "\x01", "😀",
    "Ω", "１", "٣", "ａ", ";;", "{}", "()", "x.y", "a[0]",
]
TOKENS = LANGUAGE_TOKENS * 3 + FOREIGN_TOKENS


def soups() -> st.SearchStrategy[str]:
    return st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", " ", "\n"])),
                    max_size=40).map(lambda parts: "".join(t + s for t, s in parts))


@st.composite
def mutated_programs(draw: Any) -> str:
    """A valid program, then a few insertions, deletions, replacements and duplications."""
    source = draw(programs())
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(source)))
        j = draw(st.integers(i, min(len(source), i + 12)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        token = draw(st.sampled_from(TOKENS))
        if how == "insert":
            source = source[:i] + token + source[i:]
        elif how == "delete":
            source = source[:i] + source[j:]
        elif how == "replace":
            source = source[:i] + token + source[j:]
        else:
            source = source[:j] + source[i:j] + source[j:]
    return source


def without_nul(s: str) -> str:
    return s.replace("\x00", "")


# a fragment many times over (long chains, deep nesting, many statements), in a call or not
repeated = st.tuples(
    st.sampled_from(["", "log(", "if (", "const a = "]),
    st.sampled_from(["1 + ", "1 && ", "1 < ", "!", "- ", "(", "{", "1 ? 1 : ", "1 ? ", "1;",
                     "log(1)\n", "{}", ";", "if (1) ", "a;", "'x' + "]),
    st.integers(1, 1200),
    st.sampled_from(["", "1", "1)", "true", "}"]),
).map(lambda t: t[0] + t[1] * t[2] + t[3])

random_sources = st.one_of(
    soups(), mutated_programs(), mutated_programs(), repeated,
    st.text(max_size=200).map(without_nul),
    st.text(st.sampled_from("cosnt ifelrubyg(){};,?:=!<>+-*/&|'\"\\.\n 0123456789"),
            max_size=120),
)


@deterministic
@SOUP_SETTINGS
@given(source=random_sources)
def test_random_sources_are_refused_exactly_when_the_model_refuses_them(bots, source):
    check(bots, source)


@st.composite
def random_bytes(draw: Any) -> str:
    if draw(st.booleans()):
        raw = draw(st.binary(max_size=300))
    else:   # a valid program's bytes with a few of them changed
        raw = bytearray(draw(programs()).encode())
        for _ in range(draw(st.integers(1, 4))):
            if raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = bytes(raw)
    return without_nul(raw.decode("utf-8", errors="replace"))


@deterministic
@SOUP_SETTINGS
@given(source=random_bytes())
def test_random_bytes_are_refused_exactly_when_the_model_refuses_them(bots, source):
    check(bots, source)


# ------------------------------------------------------------------------------------------
# the edges, one by one

def _pad_to(n: int, body: str, char: str = "x") -> str:
    """body, then a comment of `char`s making the source n bytes long."""
    room = n - len(body.encode()) - 4
    count = room // len(char.encode())
    return body + "/*" + char * count + "x" * (room - count * len(char.encode())) + "*/"


EDGES = [
    # the examples of docs/bots.md
    "log(0.1 + 0.2 === 0.3)", "log(1.50 + '')", "log('' + 1.50 + true)", "log(1 === 1.0)",
    "log(1 === '1')", "log(1 == 1)", "log(1 != 2)",
    # statements and their ends
    "", "\n", "// only a comment", "/* only */", "log(1)", "log(1)\n", "log(1);", "{ log(1) }",
    "{log(1)}", "{}", "{ }\n{ }", "log(1) log(2)", "log(1)\nlog(2)", "log(1)\r\nlog(2)",
    "log(1)\rlog(2)", "log(1)\r\rlog(2)", "log(1) // c\rlog(2)", "log(1) /* \r */ log(2)",
    "log(1) // c\nlog(2)", "log(1) /* c */ log(2)", "log(1) /* c\n */ log(2)",
    "log(1);;", ";", "{};", "if (true) log(1) else log(2)", "if (true) log(1)\nelse log(2)",
    "if (true) log(1); else log(2)", "if (true) {} else {}", "if (false) log(1) \n else if (true) log(2)",
    "if (true) const a = 1", "if (true) { const a = 1 }", "if (true) const a = 1\nlog(a)",
    "const a = 1; if (true) const a = 2\nlog(a)", "if (true) const a = log(1)",
    "if (false) const a = log(1); else const a = log(2)", "if (true) ;", "if (false) ;",
    "if (true) ; log(1)", "if (false) {} else ;", "if (true) {} else ;", "if (true) ; else log(1)",
    "log(1);;;log(2)", ";;;", "{;}", "if (true) { ; }", "if true log(1)", "else log(1)",
    "if (1) if (0) log(1); else log(2)", "return", "return;", "return\n", "return 1",
    "return\nlog(1)", "log(1)\nreturn\nlog(2)", "{ return } log(1)", "if (true) return; log(1)",
    "return log(1)", "log(1)\n(2)", "log(1)\n-1", "const a = 1\n(a)", "const a = 1\n-a",
    "const a = 1", "const a", "const a = 1, b = 2", "const a = 1\na = 2", "const a = 1; a += 1",
    "const a = 1; a++", "const a = 1; const a = 2", "const a = 1; { const a = 2; log(a) } log(a)",
    "const a = 1; { const a = a + 1; log(a) }", "{ const a = 1 } log(a)",
    "const a = 1; { log(a); const a = 2; log(a) }", "log(a); const a = 1", "const a = a",
    "const log = 1", "const price = 1", "const cancel_all = 1", "const If = 1; log(If)",
    "const format = 'f'; log(format)", "const iff = 1; log(iff)", "const NaN = 1; log(NaN)",
    "const enum = 1", "const undefined = 1", "const _ = 1; log(_)", "const $a = 1",
    "const ab1_ = 2; log(ab1_)", "const é = 1",
    # expressions
    "log(1--1)", "log(1 - -1)", "log(- -1)", "log(--1)", "log(-(-1))", "log(!!1)", "log(+1)",
    "log(1 +\n2)", "log(1\n+ 2)", "log((1))", "log(((((1)))))", "log(()", "log())", "log(,)",
    "log(1,)", "log(true ? 1 : 2 ? 3 : 4)", "log(false ? 1 : true ? 3 : 4)",
    "log(true ? false ? 1 : 2 : 3)", "log(1 ? 2)", "log(1 < 2 < 3)", "log(2 < 1 === false)",
    "log(1 + 2 * 3 - 4 / 8)", "log((1 + 2) * 3)", "log(1 - 2 - 3)", "log(12 / 2 / 3)",
    "log(1 || 2 && 0)", "log(0 || '' || 'z')", "log(1 && 0)", "log('' && x)", "log(!'')",
    "log(!'a')", "log(!0)", "log(true + 1)", "log(true + true)", "log('a' + true)",
    "log(1 - '1')", "log(-'a')", "log(-true)", "log('b' > 'a')", "log('a' < 'B')",
    "log('é' > 'z')", "log('😀' > '\uffff')", "log('a' < 1)", "log(true < false)",
    "log(true === true)", "log('a' === 'a')", "log('' === 0)", "log(0 === false)",
    "log(1 !== 1.000)", "log(log(1))", "log(buy('m1','YES',1))",
    "log(a.b)", "log(a[0])", "log(x => 1)", "log(`t`)", "log(/re/)", "log(1 % 2)",
    "log(2 ** 3)", "log(1 & 2)", "log(1 | 2)", "log(null)", "log(undefined)", "log(this)",
    "log(typeof 1)", "log(new Date())", "log(eval('1'))", "log(1 ?? 2)", "log(NaN)",
    "log(Infinity)", "log(foo(1))", "log(log)", "log((log)(1))", "log(1(2))", "log(log(1)(2))",
    "log(min(1, 2)(3))",
    # numbers
    "log(007)", "log(00.50)", "log(1.)", "log(.5)", "log(1.5.5)", "log(1e3)", "log(0x10)",
    "log(1_000)", "log(12abc)", "log(0.123456789012345678)", "log(0.1234567890123456789)",
    "log(1.0000000000000000000)", "log(999999999999999999999999999999)",
    "log(999999999999999999999999999999.999999999999999999)",
    "log(1000000000000000000000000000000)", "log(-999999999999999999999999999999)",
    "log(999999999999999999999999999999 + 1)", "log(-999999999999999999999999999999 - 1)",
    "log(999999999999999999999999999999 * 1)", "log(999999999999999999999999999999 * 1.5)",
    "log(500000000000000000000000000000 + 500000000000000000000000000000)",
    "log(999999999999999999999999999999 / 0.5)", "log(2 / 3)", "log(-2 / 3)", "log(1 / 8)",
    "log(1 / 3 * 3)", "log(10 / 4)", "log(1 / 0)", "log(0 / 0)", "log(1 / 0.000)",
    "log(0.0000000005 * 0.000000001)", "log(-0.0000000005 * 0.000000001)",
    "log(0.0000000004 * 0.000000001)", "log(0.000000000000000001 / 2)",
    "log(-0.000000000000000001 / 2)", "log(0.000000000000000001 / 3)",
    "log(0 * -1)", "log(-0)", "log(-0 + '')", "log(0.000)", "log(100.000)", "log(1.10 + 0.20)",
    "log(123456789012345678901234567890 - 1)", "log(0.1 * 3)", "log(1 / 7)",
    "log(abs(-0.5))", "log(min(1, 1.0))", "log(max(-1, -2))", "log(min('a', 'b'))",
    "log(abs(true))", "log(max(1))", "log(abs())",
    # strings
    "log('it\\'s')", 'log("say \\"hi\\"")', "log('a\\\\b')", "log('a\\nb')", "log('a\\tb')",
    "log('a\\x41')", "log('a\\u0041')", "log('\\0')", "log('a\\\nb')", "log('a\nb')",
    "log('a\rb')", "log('a\tb')", "log('open)", 'log("mixed\')', "log('\u2028')",
    "log('\u00a0')", "log('\x01')", "log('é日😀')", "log(\"\")", "log('\\\"')",
    # built-ins reading inputs
    "log(price('m1', 'YES'))", "log(price('m1', 'MAYBE'))", "log(price('m' + 1, 'YES'))",
    "log(price('m' + 2.0, 'NO'))", "log(price('m' + 4 / 4, 'NO'))", "log(price(1, 'YES'))",
    "log(price('m1', true))", "log(price('m1'))", "log(price('m1', 'YES', 1))",
    "log(position('m2', 'NO'))", "log(balance())", "log(balance(1))", "log(now())",
    "log(avg_price('m1', 'YES', 30))", "log(avg_price('m1', 'YES', 30.0))",
    "log(avg_price('m1', 'YES', 60 / 2))", "log(avg_price('m1', 'YES', 1440))",
    "log(avg_price('m1', 'YES', 1441))", "log(avg_price('m1', 'YES', 0))",
    "log(avg_price('m1', 'YES', 2.5))", "log(avg_price('m1', 'YES', '30'))",
    "log(avg_price('m1', 'YES', -30))", "log(volume('m1', 60))", "log(volume('m1', 45))",
    "log(volume('m1', true))", "log(price(1 / 0, log('never')))",
    "log(price(log('first'), 'YES'))",
    # actions
    "buy('m1', 'YES', 10)", "buy_for('m2', 'NO', 2.50)", "sell('m1', 'YES', -1)",
    "limit('m1', 'YES', 'buy', 0.4, 10)", "cancel_all('m1')", "buy(1, true, 'x')",
    "buy('m1', 'YES')", "limit('m1', 'YES', 'buy', 0.4)", "cancel_all()",
    "buy('m1', 'YES', 1); log(1 / 0)", "buy('m1', 'YES', 1); return; sell('m1', 'YES', 1)",
    "if (false) buy('m1', 'YES', 1)\nsell('m2', 'NO', 2)",
    "const ok = buy('m1', 'YES', 1) && log('bought'); log(ok)",
    "log(buy('m1', 'YES', 1) === true)",
    "log(false && buy('m1', 'YES', 1))", "log(true || sell('m1', 'YES', 1))",
    "log(true ? buy('m1', 'YES', 1) : sell('m1', 'YES', 1))",
    "cancel_all('m1')\n" * 10, "cancel_all('m1')\n" * 11,
    "if (false) { " + "buy('m1', 'YES', 1)\n" * 11 + "}",
    # the log's limits
    "log(1)\n" * 20, "log(1)\n" * 21, "log(1)\n" * 20 + "buy('m1', 'YES', 1)",
    "log('" + "x" * 199 + "é')", "log('" + "é" * 201 + "')", "log('" + "😀" * 250 + "')",
    # sizes
    _pad_to(8192, "log(1)\n"), _pad_to(8193, "log(1)\n"), _pad_to(8192, "log(1)\n", "é"),
    _pad_to(8194, "log(1)\n", "é"), _pad_to(8192, "log(1)\n", "😀"),
    "log('" + "é" * 4092 + "')", "log('" + "é" * 4093 + "')",
    "log(1)\n" * 333, "log(1)\n" * 334, "log(" + "!" * 996 + "true)",
    "log(" + "!" * 997 + "true)", "log(" + "- " * 996 + "1)", "log(" + "-" * 5 + "1)",
    "(" * 4095 + "1" + ")" * 4095, ";" * 8192, "log(1);" * 1170, "1;" * 4096,
    "log(" + "(" * 20 + "1" + ")" * 20 + ")", "1 + " * 650 + "1", "1 + " * 700 + "1",
    "log(" + "1 * " * 1500 + "1)", "1 && " * 1600 + "1",
    "log(" + " + ".join(["1"] * 498) + ")", "log(" + " + (".join(["1"] * 330) + ")" * 330 + ")",
    "{" * 999 + "}" * 999, "{" * 1000 + "}" * 1000, "if (1) " * 499 + "{}",
    "log(" + "1 ? " * 330 + "1" + " : 0" * 330 + ")",
    "const s0 = 'ab'\n" + "".join(f"const s{i} = s{i - 1} + s{i - 1}\n" for i in range(1, 17))
    + "log(s16)",
    # characters
    "log(1)\u00a0", "\ufefflog(1)", "log(1)\f", "log(1)\v", "log(1)\u2028log(2)", "log(１)",
    "log(٣)", "ｌog(1)", "log(1) # c", "log(1) @", "$", "\\", "log(1)\x01",
]


@pytest.mark.parametrize("source", EDGES, ids=range(len(EDGES)))
def test_edges(bots, source):
    check(bots, source)


def test_the_model_reads_the_document_as_written():
    """The model itself against docs/bots.md's own examples and the stated semantics."""
    def run(source: str) -> dict:
        return evaluate(parse(source), FIXED_INPUTS)

    assert run("log(0.1 + 0.2 === 0.3)")["logs"] == ["true"]
    assert run("log('' + 1.50 + true)")["logs"] == ["1.5true"]
    assert run("log(2 / 3); log(-2 / 3); log(0 * -1)")["logs"] == [
        "0.666666666666666667", "-0.666666666666666667", "0"]
    assert run("log(0.0000000005 * 0.000000001)")["logs"] == ["0.000000000000000001"]
    assert run("log(1 / 0)") == {"actions": [], "logs": [], "error": True}
    assert run("buy('m1', 'YES', 1); log(1 / 0)") == {"actions": [], "logs": [], "error": True}
    assert run("log(1)\n" * 21)["logs"] == ["1"] * 20
    assert run("log(avg_price('m' + 1, 'YES', 60 / 2))")["logs"] == [
        text_of(FIXED_INPUTS["avg_price(m1,YES,30)"])]
    for refused in ("while (true) {}", "log(1 == 1)", "const a = 1\na = 2", "let a = 1",
                    "log(a)", "log(x => 1)", "log(a.b)", "return 1", "log(1, 2)",
                    "const a = 1; const a = 2", "log(0.1234567890123456789)",
                    "log(1000000000000000000000000000000)", "cancel_all('m1')\n" * 11,
                    "log(1)\n" * 334, _pad_to(8193, "")):
        with pytest.raises(Refused):
            parse(refused)


def text_of(v: Decimal) -> str:
    s = format(v, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
