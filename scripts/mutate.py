"""make mutate: does the suite catch plausible bugs? Each mutant in tests/mutants.py is one small
bug, stated as a search-and-replace inside one named function (so it keeps applying while the
code around it moves); it is put into a copy of the checkout, and the tests that own its rule
run against it. A mutant is killed when one of them fails, survives when all pass, and no
longer applies when its search text is not found exactly once in its function.

    python scripts/mutate.py ADMIN_URL [ID ...]     (make mutate; IDs pick mutants by number)
    python scripts/mutate.py --check                 which mutants still apply, running nothing

Why not mutmut or cosmic-ray for the Python layer: they mutate every operator of every module
and map mutants to tests by coverage, in-process; our HTTP tests run the server as a separate
process started from the checkout, where neither sees which test exercises what, and most of
the rules live in SQL, which neither mutates. One runner treats both layers alike.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.db import pg_env
from tests.mutants import MUTANTS, Mutant

TIMEOUT_S = 600  # one mutant's owning tests
BASELINE_TIMEOUT_S = 3600  # every owning test at once, without a mutant


def function_span(text: str, path: str, name: str) -> tuple[int, int]:
    """Where a named function's definition starts and ends in a file."""
    if path.endswith(".py"):
        m = re.search(rf"^(?:async )?def {re.escape(name)}\(|^class {re.escape(name)}\b", text, re.MULTILINE)
        if not m:
            raise LookupError(name)
        end = re.compile(r"^(?:async def |def |class |@|[A-Za-z_])", re.MULTILINE).search(text, m.end())
        return m.start(), end.start() if end else len(text)
    m = re.search(rf"^create or replace (?:function|procedure|view) {re.escape(name)}\b", text,
                  re.MULTILINE | re.IGNORECASE)
    if not m:
        raise LookupError(name)
    end = re.compile(r"^create or replace |^grant |^comment |^-- |^drop ", re.MULTILINE | re.IGNORECASE).search(
        text, m.end())
    return m.start(), end.start() if end else len(text)


def apply(mutant: Mutant, root: Path) -> bool:
    path = root / mutant.file
    text = path.read_text()
    try:
        start, end = function_span(text, mutant.file, mutant.function)
    except LookupError:
        return False
    body = text[start:end]
    if body.count(mutant.search) != 1:
        return False
    path.write_text(text[:start] + body.replace(mutant.search, mutant.replace) + text[end:])
    return True


def run(cmd: list[str], env: dict, cwd: Path, timeout: int = TIMEOUT_S) -> bool:
    """True when the command passes within its time."""
    try:
        return subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=False,
                              stderr=subprocess.DEVNULL, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def check() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for number, mutant in enumerate(MUTANTS, 1):
            target = Path(tmp) / mutant.file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / mutant.file, target)
            print(f"{number:3} {'applies' if apply(mutant, Path(tmp)) else 'NO LONGER APPLIES':17} "
                  f"{mutant.file} {mutant.function}: {mutant.bug}")


def main(argv: list[str]) -> None:
    if argv == ["--check"]:
        return check()
    if not argv:
        raise SystemExit(__doc__)
    admin_url, picked = argv[0], {int(a) for a in argv[1:]}
    py = str(ROOT / ".venv" / "bin" / "python")
    # stopped (make mutate interrupted), clean up all the same
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # property tests fail fast: the first failing example, no shrinking
    # (BETJEE_NO_CRON: no scheduled job may connect to the template its copies are made from)
    env = {**os.environ, "BETJEE_ADMIN_URL": admin_url, "BETJEE_HYPOTHESIS": "mutate", "BETJEE_NO_CRON": "1",
           "BETJEE_JWT_SECRET": os.environ.get("BETJEE_JWT_SECRET") or "m" * 40}
    work = Path(tempfile.mkdtemp(prefix="betjee-mutate-", dir=ROOT))
    copy = work / "checkout"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        (copy / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, copy / f)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    template = f"betjee_mutate_{os.getpid()}"
    db = [py, str(copy / "scripts" / "db.py")]
    url = subprocess.run([*db, "create", admin_url, template], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    subprocess.run([*db, "up", url], env=env, check=True, stdout=subprocess.DEVNULL)
    pgtap = "set client_min_messages = warning; create extension if not exists pgtap"
    subprocess.run(["psql", url, "-qc", pgtap], check=True, stdout=subprocess.DEVNULL)
    results = []
    try:
        # the owning tests must pass without a mutant, or every mutant would look killed
        tests = tuple(sorted({t for m in MUTANTS if not picked or MUTANTS.index(m) + 1 in picked
                              for t in m.tests}))
        baseline = Mutant("", "", "", "", "none", tests)
        if not passes(baseline, copy, db, admin_url, template, env, BASELINE_TIMEOUT_S):
            raise SystemExit("the tests fail without any mutant, or take over "
                             f"{BASELINE_TIMEOUT_S} s: fix them first (make test)")
        print(f"baseline: {len(tests)} test files pass without a mutant", flush=True)
        for number, mutant in enumerate(MUTANTS, 1):
            if picked and number not in picked:
                continue
            original = (copy / mutant.file).read_text()
            started = time.monotonic()
            if not apply(mutant, copy):
                outcome = "no longer applies"
            elif not passes(mutant, copy, db, admin_url, template, env):
                outcome = "killed"
            else:
                outcome = "equivalent" if mutant.equivalent else "survived"
            (copy / mutant.file).write_text(original)
            results.append((number, mutant, outcome))
            print(f"{number:3} {outcome:17} {time.monotonic() - started:5.0f} s  "
                  f"{mutant.file} {mutant.function}: {mutant.bug}", flush=True)
    finally:
        subprocess.run([*db, "drop", admin_url, template], env=env, check=False)
        shutil.rmtree(work, ignore_errors=True)
    scored = [r for r in results if r[2] in ("killed", "survived")]
    killed = sum(1 for r in scored if r[2] == "killed")
    print(f"\n{killed} of {len(scored)} mutants killed ({killed / max(1, len(scored)):.0%}); "
          f"{sum(1 for r in results if r[2] == 'equivalent')} equivalent (explained in "
          f"tests/mutants.py), {sum(1 for r in results if r[2] == 'no longer applies')} no longer apply")
    for number, mutant, outcome in results:
        if outcome == "survived":
            print(f"  survived {number}: {mutant.bug} ({mutant.file} {mutant.function})")
        elif outcome == "equivalent":
            print(f"  equivalent {number}: {mutant.bug}: {mutant.equivalent}")


def passes(mutant: Mutant, copy: Path, db: list[str], admin_url: str, template: str,
           env: dict, timeout: int = TIMEOUT_S) -> bool:
    """Whether every test owning the mutant's rule passes against it: a database copied from
    the migrated template with the mutated sql/ applied, then its pgTAP files and pytest tests."""
    name = f"{template}_m"
    url = subprocess.run([*db, "create", admin_url, name, template], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # a mutant that loops for ever is killed by its tests failing, not waited for
        conn.execute(f'alter database "{name}" set statement_timeout = \'60s\'')
    try:
        if not run([*db, "up", url], env, copy):
            return False  # the mutant does not even load
        pgtap = [t for t in mutant.tests if t.startswith("pgtap/")]
        pytest = [t for t in mutant.tests if not t.startswith("pgtap/")]
        if pgtap and not run(["pg_prove", "--ext", ".sql", *pgtap], {**env, **pg_env(url)}, copy, timeout):
            return False
        return not pytest or run(
            [str(copy / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q",
             "-p", "no:cacheprovider", *pytest], {**env, "BETJEE_TEST_DATABASE_URL": url}, copy, timeout)
    finally:
        subprocess.run([*db, "drop", admin_url, name], env=env, check=False)


if __name__ == "__main__":
    main(sys.argv[1:])
