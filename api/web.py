"""The web app's side of the forwarder: its static files, the session cookie (the token of a
login kept in an httpOnly cookie instead of the page's memory), the same-origin check that
makes a cookie-authenticated write safe from other sites (CSRF), and the security headers of
every response. The app itself is in web/ and calls the public API like any other client."""

from __future__ import annotations

import os
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent / "web"
COOKIE = "betjee_session"
# Scripts, styles, images and connections from the app's own origin only; no inline script,
# no frames around it, no form posting elsewhere.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"),
           (b"cross-origin-opener-policy", b"same-origin")]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: a stream is not buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
            await send(message)
        await self.app(scope, receive, with_headers)


def origins(request: Request) -> set[str]:
    """The app's own origins: BETJEE_PUBLIC_ORIGIN (comma-separated, as the browser sees the
    site behind a proxy), else the origin this request was addressed to."""
    named = {o.strip().rstrip("/") for o in os.environ.get("BETJEE_PUBLIC_ORIGIN", "").split(",")
             if o.strip()}
    if named:
        return named
    return {f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"}


def same_origin(request: Request) -> bool:
    """Whether a request comes from the app's own pages: its Origin header (which browsers send
    with every POST and a page cannot forge) names the app. No Origin: not from a page of ours."""
    origin = request.headers.get("origin")
    return origin is not None and origin.rstrip("/") in origins(request)


def session_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def secure(request: Request) -> bool:
    """Secure cookies when the site is served over HTTPS (as the browser sees it)."""
    return any(o.startswith("https://") for o in origins(request))


def set_session(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(COOKIE, token, max_age=max(0, max_age), path="/", httponly=True,
                        samesite="strict", secure=secure(request))


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=secure(request))


class Assets(StaticFiles):
    """web/dist (the built app) and web/static, never cached stale: revalidated each time."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["cache-control"] = "no-cache"
        return response


async def index(request: Request) -> Response:
    """The app's one page; the client routes within it (#/market/21s1)."""
    page = ROOT / "index.html"
    response = FileResponse(page, media_type="text/html")
    response.headers["cache-control"] = "no-cache"
    return response


def assets() -> Assets:
    return Assets(directory=ROOT / "dist", check_dir=False)


def static() -> Assets:
    return Assets(directory=ROOT / "static", check_dir=False)
