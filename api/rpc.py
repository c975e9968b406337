"""The catalog of schema `api` and the call of one of its functions.

Functions, argument names and types are read from pg_proc at start-up and again whenever the
schema is migrated (NOTIFY betjee_schema). Names from the client never become SQL text: the
function must be in the catalog, identifiers go through psycopg.sql, values are parameters
cast to the declared type. The jsonb result is returned as PostgreSQL rendered it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection, sql

from api.auth import Identity

CATALOG = """
select p.proname, p.provolatile in ('s', 'i') as readonly,
       coalesce(p.proargnames, '{}') as names,
       array(select format_type(t, null) from unnest(p.proargtypes) t) as types,
       p.pronargdefaults, coalesce(obj_description(p.oid, 'pg_proc'), '') as comment
  from pg_proc p
 where p.pronamespace = 'api'::regnamespace and p.prokind = 'f'
 order by p.proname
"""
ERROR_CODES = "select code, status from bj.error_codes"
CALL_LIMITS = "select function, max_concurrent from bj.call_limits"
# Whether this login may write the confirming transaction; without it, writes commit the
# ordinary way (waiting for the flush with their locks held).
CAN_CONFIRM = ("select has_function_privilege("
               "'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute')")
# A transaction that writes one WAL record (a logical message naming the database) and so
# commits synchronously: its flush covers every commit record before it.
DURABLE = ("select pg_logical_emit_message(true, 'betjee.durable', current_database()::text)"
           "::text")
# Where a write that committed synchronously lies in the WAL: no further than this (written,
# so that a replica will replay as far).
WRITTEN = "select pg_current_wal_lsn()::text"


@dataclass(frozen=True)
class Function:
    name: str
    readonly: bool
    args: dict[str, str]  # name -> type, in order
    required: frozenset[str]
    comment: str = ""


@dataclass
class Catalog:
    functions: dict[str, Function] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    early_release: bool = False
    limits: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: AsyncConnection) -> Catalog:
        functions = {}
        for name, readonly, names, types, ndefaults, comment in await (
                await conn.execute(CATALOG)).fetchall():
            names = names[:len(types)]
            required = frozenset(names[:len(names) - ndefaults])
            functions[name] = Function(name, readonly, dict(zip(names, types)), required, comment)
        statuses = dict(await (await conn.execute(ERROR_CODES)).fetchall())
        early_release = (await (await conn.execute(CAN_CONFIRM)).fetchone())[0]
        limits = dict(await (await conn.execute(CALL_LIMITS)).fetchall())
        return cls(functions, statuses, early_release, limits)


class BadArguments(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


MAX_DEPTH = 32  # arrays and objects within the arguments, nested


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise BadArguments(f"the key {twice!r} appears twice in one object")
    return out


def _not_json(constant: str) -> Any:
    raise BadArguments(f"{constant} is not a JSON number")


def _check(value: Any, depth: int = 0) -> None:
    """Strings and keys must be Unicode text (no lone surrogate escapes such as \\ud800),
    and the nesting shallow."""
    if depth > MAX_DEPTH:
        raise BadArguments(f"the arguments nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadArguments("a string holds an escape that is not a Unicode character "
                               "(a lone surrogate)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


def parse_body(body: bytes) -> dict[str, Any]:
    """Named arguments from a JSON object; numbers stay exact (Decimal). Refused as bad input:
    what is not JSON (NaN and Infinity included), a key twice in one object, lone surrogate
    escapes, nesting deeper than MAX_DEPTH."""
    if not body.strip():
        return {}
    try:
        args = json.loads(body, parse_float=Decimal, parse_constant=_not_json,
                          object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadArguments(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadArguments(f"the arguments nest deeper than {MAX_DEPTH} levels") from exc
    if not isinstance(args, dict):
        raise BadArguments("the body must be a JSON object of named arguments")
    _check(args)
    return args


def as_parameter(value: Any, pgtype: str = "text") -> str | None:
    """An argument as the text its declared type parses: a JSON array given for an array
    type becomes an array literal (its elements scalars); other JSON stays JSON."""
    if value is None:
        return None
    if isinstance(value, str) and "\x00" in value:
        raise BadArguments("text arguments cannot contain NUL characters")
    if isinstance(value, str):
        _check(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and pgtype.endswith("[]"):
        return "{" + ",".join(_array_element(v) for v in value) + "}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (dict, list)):
        raise BadArguments("an array argument holds scalars: numbers, strings, booleans or null")
    text = as_parameter(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


Query = tuple[sql.Composed, list[str | None]]


def prepare(fn: Function, args: dict[str, Any]) -> Query:
    unknown = sorted(set(args) - set(fn.args))
    if unknown:
        raise BadArguments(f"api.{fn.name} has no argument {', '.join(unknown)}",
                           hint=f"arguments: {', '.join(fn.args) or 'none'}")
    missing = sorted(fn.required - set(args))
    if missing:
        raise BadArguments(f"api.{fn.name} needs {', '.join(missing)}",
                           hint=f"arguments: {', '.join(fn.args)}")
    names = [n for n in fn.args if n in args]
    # the answer's status and headers, when the function sets them (PostgREST's convention)
    query = sql.SQL("select {}({})::text, current_setting('response.status', true),"
                    " current_setting('response.headers', true)").format(
        sql.Identifier("api", fn.name),
        sql.SQL(", ").join(sql.SQL("{} => %s::{}").format(sql.Identifier(n), sql.SQL(fn.args[n]))
                           for n in names))
    return query, [as_parameter(args[n], fn.args[n]) for n in names]


@dataclass(frozen=True)
class Answer:
    body: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    position: str | None = None  # a write's WAL position (pg_lsn), when asked for


def _answer(body: str | None, status: str | None, headers: str | None) -> Answer:
    """The function's JSON, with the status and headers it set (PostgREST: response.status,
    response.headers, a JSON array of one-header objects), if any."""
    out: dict[str, str] = {}
    for item in json.loads(headers) if headers else []:
        out.update({str(k): str(v) for k, v in item.items()})
    return Answer(body if body is not None else "null", int(status) if status else 200, out)


async def call(conn: AsyncConnection, fn: Function, prepared: Query, who: Identity,
               ip: str | None, readonly: bool, early_release: bool,
               position: bool = False) -> Answer:
    """One request, one transaction: role and claims set locally, then the function. The
    statements go out pipelined, so the commit follows the call without a network round trip
    (a trade's row locks are held no longer than its work).

    A write (a VOLATILE function) commits without waiting for its WAL to reach the disk, so its
    row locks go at once and the next trade on the same market need not wait for the flush;
    the answer waits for it instead: a second transaction commits synchronously, and its flush
    covers the write's commit record, which precedes it in the WAL. Nothing is answered before
    it is durable; a crash can only lose writes nobody was told about (in WAL order, so never
    one that a later durable write saw). Where the login may not write the second transaction
    (early_release false), a write commits the ordinary way.

    With `position`, a write's answer carries a WAL position past its commit (the confirming
    message's, or the written WAL's end after a synchronous commit): a replica that has
    replayed that far shows the write (api/replicas.py)."""
    query, params = prepared
    confirm = early_release and not fn.readonly
    async with conn.pipeline():
        async with conn.transaction():
            if readonly:
                await conn.execute("set transaction read only")
            await conn.execute(
                "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
                " set_config('request.ip', %s, true), set_config('statement_timeout', '10s', true),"
                " set_config('synchronous_commit', %s, true)",
                [who.role, json.dumps(who.claims), ip or "", "off" if confirm else "on"])
            cursor = await conn.execute(query, params)
        written = None
        if confirm:
            written = await conn.execute(DURABLE)
        elif position and not fn.readonly:
            written = await conn.execute(WRITTEN)
        row = await cursor.fetchone()
        at = (await written.fetchone())[0] if written and position else None
    answer = _answer(*row)
    return replace(answer, position=at) if at else answer
