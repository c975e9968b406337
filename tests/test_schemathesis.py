"""schemathesis against the served OpenAPI document, bounded to fit make test: every
operation, with and without a token, and not one 5xx."""

from __future__ import annotations

import subprocess

import httpx

from tests.conftest import ROOT, unique


def test_no_generated_request_yields_a_server_error(server):
    token = httpx.post(server + "/rpc/signup", json={"username": unique("fz"),
                                                     "password": "password123"}).json()["token"]
    for headers in ([], ["-H", f"Authorization: Bearer {token}"]):
        out = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "schemathesis"), "run", f"{server}/api/v1/openapi.json",
             "--checks", "not_a_server_error", "--max-examples", "15", "--seed", "1",
             "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
             "--no-color", "--request-timeout", "20", *headers],
            capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, out.stdout[-4000:]
        assert " passed" in out.stdout
