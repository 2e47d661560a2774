# One-word targets; each is a thin wrapper around the commands the README shows.
PY := .venv/bin/python

.PHONY: run test lint fmt bench check services-up services-down adversarial security

run:
	python3 scripts/dev.py run

test:
	python3 scripts/dev.py test

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

fmt:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench:
	$(PY) bench/engine.py --orders 1000000 --seed 7
	$(PY) bench/e2e.py --seconds 15 --clients 8
	$(PY) bench/e2e.py --seconds 15 --clients 8 --batch 20
	$(PY) bench/profile_place.py --requests 2000 --top 15
	$(PY) bench/ws_fanout.py --clients 100 --rate 20
	$(PY) bench/ws_fanout.py --clients 1000 --rate 2

check: lint
	$(PY) manage.py makemigrations --check --dry-run
	python3 scripts/dev.py test

services-up:
	python3 scripts/dev.py services up

services-down:
	python3 scripts/dev.py services down

# The adversarial tests at full size (10,000 orders through the API; 10,000 under 50 engine kills), figures at the end.
ADVERSARIAL := tests/test_concurrency.py tests/test_adversarial_flow.py tests/test_crash_replay.py \
	tests/test_redis_restart.py matching/tests/test_engine_faults.py
adversarial:
	rm -rf .data/test/reliability
	ADVERSARIAL_FULL=1 python3 scripts/dev.py test -q $(ADVERSARIAL)
	cat .data/test/reliability/*.json

# Hostile users and input: cross-user isolation, schemathesis (harder than in the suite), bandit, outages.
SECURITY := tests/test_isolation.py tests/test_schemathesis.py tests/test_security_scans.py \
	exchange_site/tests/test_outages.py exchange_site/tests/test_api_errors.py exchange_site/tests/test_production_settings.py
security:
	SCHEMATHESIS_EXAMPLES=100 python3 scripts/dev.py test -q -s $(SECURITY)
