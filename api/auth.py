"""Bearer token to role and claims. Tokens are HS256 JWTs signed by the database
(bj.issue_token) with the secret both share; the algorithm is pinned. A token is refused from
the second its `exp` passes (no leeway); its `iat` is not checked, so a database clock a little
ahead of this server's does not refuse fresh tokens."""

from __future__ import annotations

import os
from dataclasses import dataclass

import jwt

ROLES = {"authenticated"}


class AuthError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    role: str
    claims: dict

    @property
    def anonymous(self) -> bool:
        return self.role == "anon"


ANON = Identity("anon", {})


def secret() -> str:
    value = os.environ.get("BETJEE_JWT_SECRET", "")
    if len(value) < 32:
        raise RuntimeError("BETJEE_JWT_SECRET must be set (at least 32 characters)")
    return value


def identify(header: str | None, key: str) -> Identity:
    """The caller of a request: anon without a header, else the verified token's role."""
    if not header:
        return ANON
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("the Authorization header must be: Bearer <token>")
    try:
        claims = jwt.decode(token.strip(), key, algorithms=["HS256"], leeway=0,
                            options={"require": ["exp", "sub", "role"], "verify_iat": False})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("JWT expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    if claims.get("role") not in ROLES:
        raise AuthError("the token's role is not allowed")
    return Identity(claims["role"], claims)
