# BetJee: every entry point a user needs. `make run` and `make test` install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
# The database: DATABASE_URL when set, else the embedded cluster inside the checkout.
DBURL = $(or $(DATABASE_URL),$(shell scripts/cluster.sh url))
# The token signing secret, shared by the database and the HTTP layer.
export BETJEE_JWT_SECRET := $(shell scripts/secret.sh)

.PHONY: help deps db dburl psql analyst stop migrate rollback seed run test lint bench mutate schema backup replica bench-data bench-reads

help:
	@echo "make run | test | db | dburl | psql | analyst | stop | migrate | rollback | lint | bench | mutate | backup | replica | bench-data | bench-reads"

deps:
	@scripts/deps.sh

# start the embedded cluster (unless DATABASE_URL is set) and migrate
db: deps
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@$(PY) scripts/db.py up "$(DBURL)"

dburl:
	@echo "$(DBURL)"

psql: db
	@psql "$(DBURL)"

# a read-only SQL shell as the analyst role (schema analytics)
analyst: db
	@psql "$$($(PY) -c 'import sys; from psycopg.conninfo import conninfo_to_dict as d, make_conninfo as m; p = d(sys.argv[1]); p.update(user="analyst"); p.pop("password", None); print(m(**p))' "$(DBURL)")"

# stop the server `make run` started (by its pid), then the embedded cluster
stop:
	@scripts/server.sh stop
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh stop

migrate: db

# a base backup into .backups (BETJEE_BACKUP_DIR), WAL archived since: dba/restore.sh restores to
# any later moment (docs/dba.md); of DATABASE_URL's server when it is set
backup: deps
	@dba/backup.sh

rollback: deps
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@$(PY) scripts/db.py down "$(DBURL)"

seed: db
	@$(PY) scripts/db.py up "$(DBURL)" --seed

# serve; the server's pid goes to .run/server.pid for `make stop`. --no-proxy-headers: the
# client address comes from api/address.py (BETJEE_TRUSTED_PROXIES), never from a header
# that anyone on the machine could send.
run: seed
	@mkdir -p .run && echo $$$$ > .run/server.pid && BETJEE_DATABASE_URL="$(DBURL)" exec .venv/bin/uvicorn api.app:app --host $(HOST) --port $(PORT) \
	  --workers $(WORKERS) --no-access-log --no-proxy-headers --timeout-graceful-shutdown 5

# a local hot standby of the embedded cluster (.pgreplica, port 54330) to serve reads from:
# BETJEE_REPLICA_URL="$(scripts/replica.sh url)" make run; scripts/replica.sh stop (docs/scaling.md)
replica: db
	@[ -z "$(DATABASE_URL)" ] || { echo "make replica copies the embedded cluster; for DATABASE_URL's server see docs/scaling.md" >&2; exit 1; }
	@scripts/replica.sh start
	@echo "standby $$(scripts/replica.sh status)"
	@echo "serve reads from it:  BETJEE_REPLICA_URL=\"$$(scripts/replica.sh url)\" make run"
	@echo "stop it:              scripts/replica.sh stop   (scripts/replica.sh remove deletes it)"

test:
	@scripts/deps.sh test
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@BETJEE_ADMIN_URL="$(DBURL)" scripts/test.sh

lint: db
	@BETJEE_ADMIN_URL="$(DBURL)" scripts/lint.sh

bench: deps
	@scripts/deps.sh bench
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench.py
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench_web.py
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench_bots.py
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench_reads.py

# the databases `make bench` times reads on: 40,000 and 1,100,000 trades grown through the trade
# path (kept; BENCH_TRADES sizes the large one)
bench-data: deps
	@scripts/deps.sh bench
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench_data.py

# only the reads, on the databases bench-data built
bench-reads: deps
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@BETJEE_ADMIN_URL="$(DBURL)" $(PY) scripts/bench_reads.py

# the mutation run (not part of make test): tests/mutants.py against the tests owning each rule
mutate: deps
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@$(PY) scripts/mutate.py "$(DBURL)" $(MUTANTS)

# docs/schema.sql: what the migrations build, whole (after adding a migration)
schema: deps
	@[ -n "$(DATABASE_URL)" ] || scripts/cluster.sh start
	@url=$$($(PY) scripts/db.py create "$(DBURL)" betjee_schema) && $(PY) scripts/db.py up "$$url" --migrations-only \
	  && $(PY) scripts/db.py schema "$$url" > docs/schema.sql; $(PY) scripts/db.py drop "$(DBURL)" betjee_schema
	@echo "wrote docs/schema.sql"
