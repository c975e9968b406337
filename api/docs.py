"""The OpenAPI document and a readable docs page, both generated from the catalog."""

from __future__ import annotations

import html

from api.rpc import Catalog, Function

TYPES = {
    "numeric": {"type": "number"}, "bigint": {"type": "integer", "format": "int64"},
    "integer": {"type": "integer", "format": "int32"}, "text": {"type": "string"},
    "jsonb": {}, "boolean": {"type": "boolean"},
    "interval": {"type": "string", "example": "1 hour"},
    "timestamp with time zone": {"type": "string", "format": "date-time"},
}
ERROR = {"type": "object", "required": ["code", "message"], "properties": {
    "code": {"type": "string"}, "message": {"type": "string"},
    "details": {"type": ["string", "null"]}, "hint": {"type": ["string", "null"]}}}


def _schema(fn: Function) -> dict:
    return {"type": "object", "additionalProperties": False,
            "required": sorted(fn.required),
            "properties": {n: _type(t) for n, t in fn.args.items()}}


def _type(pgtype: str) -> dict:
    if pgtype.endswith("[]"):
        return {"type": "array", "items": _type(pgtype[:-2])}
    return dict(TYPES.get(pgtype, {"type": "string"}))


def _responses() -> dict:
    out = {"200": {"description": "the function's JSON result",
                   "content": {"application/json": {"schema": {}}}}}
    for status, text in (("400", "bad input"), ("401", "missing, forged or expired token"),
                         ("403", "forbidden"), ("404", "unknown function or market"),
                         ("409", "state conflict"), ("429", "rate limit"),
                         ("503", "database unreachable")):
        out[status] = {"description": text,
                       "content": {"application/json": {"schema": ERROR}}}
    return out


def openapi(catalog: Catalog) -> dict:
    paths = {}
    for fn in catalog.functions.values():
        op = {"summary": f"api.{fn.name}", "description": fn.comment,
              "operationId": fn.name, "responses": _responses(),
              "security": [{}, {"bearer": []}]}
        path = {"post": {**op, "requestBody": {"required": bool(fn.required), "content": {
            "application/json": {"schema": _schema(fn)}}}}}
        if fn.readonly:
            path["get"] = {**op, "operationId": f"{fn.name}_get", "parameters": [
                {"name": n, "in": "query", "required": n in fn.required,
                 "schema": {"type": "string"}} for n in fn.args]}
        paths[f"/api/v1/rpc/{fn.name}"] = path
    return {"openapi": "3.1.0",
            "info": {"title": "BetJee", "version": "1",
                     "description": "A prediction-market exchange whose exchange is PostgreSQL."},
            "paths": paths,
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                          "bearerFormat": "JWT"}}}}


def page(catalog: Catalog) -> str:
    rows = []
    for fn in catalog.functions.values():
        args = ", ".join(f"{n} {t}" + ("" if n in fn.required else " (optional)")
                         for n, t in fn.args.items())
        verbs = "GET, POST" if fn.readonly else "POST"
        rows.append(f"<tr><td><code>/api/v1/rpc/{html.escape(fn.name)}</code><br><small>{verbs}"
                    f"</small></td><td><code>{html.escape(args)}</code></td>"
                    f"<td>{html.escape(fn.comment)}</td></tr>")
    return ("<!doctype html><meta charset=utf-8><title>BetJee API</title>"
            "<style>body{font:15px system-ui;margin:2em}td{vertical-align:top;padding:.4em;"
            "border-bottom:1px solid #ddd}</style><h1>BetJee API</h1>"
            "<p>POST a JSON object of named arguments; send <code>Authorization: Bearer "
            "&lt;token&gt;</code> from signup or login. Errors are "
            "<code>{code, message, details, hint}</code>. Machine-readable: "
            "<a href=openapi.json>openapi.json</a>. Live changes: "
            "<code>GET /api/v1/stream</code> (server-sent events).</p>"
            "<table><tr><th>call</th><th>arguments</th><th>what it does</th></tr>"
            + "".join(rows) + "</table>")
