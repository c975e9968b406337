"""The documentation lists every error code with the status the HTTP layer gives it."""

import re

from tests.conftest import ROOT


def test_docs_list_every_error_code_with_its_status(db):
    documented = dict(re.findall(r"^\| (BJ\d{3}) \| \w+ \| (\d{3}) \|", (ROOT / "docs" / "errors.md").read_text(), re.MULTILINE))
    codes = {r["code"]: str(r["status"]) for r in db.execute("select code, status from bj.error_codes")}
    assert documented == codes


def test_readme_gives_both_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
