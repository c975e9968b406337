"""The catalog of schema `api` and the call of one of its functions.

Functions, argument names and types are read from pg_proc at start-up and again whenever the
schema is migrated (NOTIFY betjee_schema). Names from the client never become SQL text: the
function must be in the catalog, identifiers go through psycopg.sql, values are parameters
cast to the declared type. The jsonb result is returned as PostgreSQL rendered it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
# Whether this login may write the confirming transaction; without it, writes commit the
# ordinary way (waiting for the flush with their locks held).
CAN_CONFIRM = ("select has_function_privilege("
               "'pg_catalog.pg_logical_emit_message(boolean, text, text)', 'execute')")
# A transaction that writes one WAL record (an empty logical message) and so commits
# synchronously: its flush covers every commit record before it.
DURABLE = "select pg_logical_emit_message(true, 'betjee.durable', '')"


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
        return cls(functions, statuses, early_release)


class BadArguments(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def parse_body(body: bytes) -> dict[str, Any]:
    """Named arguments from a JSON object; numbers stay exact (Decimal)."""
    if not body.strip():
        return {}
    try:
        args = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadArguments(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise BadArguments("the body must be a JSON object of named arguments")
    return args


def as_parameter(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and "\x00" in value:
        raise BadArguments("text arguments cannot contain NUL characters")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def prepare(fn: Function, args: dict[str, Any]) -> tuple[sql.Composed, list[str | None]]:
    unknown = sorted(set(args) - set(fn.args))
    if unknown:
        raise BadArguments(f"api.{fn.name} has no argument {', '.join(unknown)}",
                           hint=f"arguments: {', '.join(fn.args) or 'none'}")
    missing = sorted(fn.required - set(args))
    if missing:
        raise BadArguments(f"api.{fn.name} needs {', '.join(missing)}",
                           hint=f"arguments: {', '.join(fn.args)}")
    names = [n for n in fn.args if n in args]
    query = sql.SQL("select {}({})::text").format(
        sql.Identifier("api", fn.name),
        sql.SQL(", ").join(sql.SQL("{} => %s::{}").format(sql.Identifier(n), sql.SQL(fn.args[n]))
                           for n in names))
    return query, [as_parameter(args[n]) for n in names]


async def call(conn: AsyncConnection, fn: Function, args: dict[str, Any], who: Identity,
               ip: str | None, readonly: bool, early_release: bool) -> str:
    """One request, one transaction: role and claims set locally, then the function. The
    statements go out pipelined, so the commit follows the call without a network round trip
    (a trade's row locks are held no longer than its work).

    A write (a VOLATILE function) commits without waiting for its WAL to reach the disk, so its
    row locks go at once and the next trade on the same market need not wait for the flush;
    the answer waits for it instead: a second transaction commits synchronously, and its flush
    covers the write's commit record, which precedes it in the WAL. Nothing is answered before
    it is durable; a crash can only lose writes nobody was told about (in WAL order, so never
    one that a later durable write saw). Where the login may not write the second transaction
    (early_release false), a write commits the ordinary way."""
    query, params = prepare(fn, args)
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
        if confirm:
            await conn.execute(DURABLE)
        row = await cursor.fetchone()
    return row[0] if row and row[0] is not None else "null"
