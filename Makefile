# make run: serve on a laptop (SQLite, no Redis). make test: both backends. make bench: load figures.
PYTHON ?= python3
VENV := .venv
PORT ?= 5000
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: run test bench venv venv-dev migrate seed clean

$(VENV)/.runtime: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime $@

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

migrate: venv
	$(FLASK) db upgrade

seed: migrate
	$(FLASK) seed

run: seed
	@echo "serving on http://127.0.0.1:$(PORT)  (API docs: http://127.0.0.1:$(PORT)/docs)"
	WEB_CONCURRENCY=1 GUNICORN_THREADS=8 PORT=$(PORT) $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: venv-dev
	scripts/test.sh $(PYTEST_ARGS)

bench: venv-dev
	$(VENV)/bin/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache
