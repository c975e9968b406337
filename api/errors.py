"""SQLSTATE to HTTP status, PostgREST's table plus the project's own codes (read from
bj.error_codes at start-up), and the error body {code, message, details, hint}."""

from __future__ import annotations

from starlette.responses import JSONResponse

# PostgREST's mapping, by exact code first, then by class (first two characters).
EXACT = {
    "23503": 409, "23505": 409, "25006": 405, "42883": 404, "42P01": 404, "42501": 403,
    "40001": 503, "40P01": 503, "57014": 503, "P0001": 400,
}
BY_CLASS = {
    "08": 503, "09": 500, "0L": 403, "0P": 403, "22": 400, "23": 400, "25": 500, "28": 403,
    "2D": 500, "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 400, "55": 500,
    "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 500, "XX": 500,
}


class Statuses:
    """The status of every SQLSTATE; the project's own come from the database."""

    def __init__(self, own: dict[str, int] | None = None) -> None:
        self.own = own or {}

    def status(self, sqlstate: str | None, anonymous: bool) -> int:
        code = sqlstate or ""
        if code in self.own:
            return self.own[code]
        if code.startswith("PT") and code[2:].isdigit():
            return int(code[2:])
        if code == "42501" and anonymous:
            return 401
        if code in EXACT:
            return EXACT[code]
        return BY_CLASS.get(code[:2], 400)


def error(status: int, code: str, message: str, details: str | None = None,
          hint: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": details or None,
                         "hint": hint or None}, status_code=status, headers=headers)
