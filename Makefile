# make run: serve on a laptop (SQLite, no Redis). make test: both backends. make bench: load figures.
PYTHON ?= python3
VENV := .venv
PORT ?= 5000
export PORT
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: run fakes test bench venv venv-dev migrate seed clean

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

# PUBLIC_BASE_URL follows PORT unless set (app/config.py); the announcer prints the URL and the
# "try it" block once /healthz answers.
run: seed
	@scripts/services.sh packages run || true
	@$(VENV)/bin/python scripts/announce.py --port $(PORT) --pid $$$$ & \
	WEB_CONCURRENCY=1 GUNICORN_THREADS=8 exec $(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

# Local WeChat and Alipay servers for the mini-program logins; prints what to export for make run.
fakes: venv
	$(FLASK) fakes all

test: venv-dev
	scripts/test.sh $(PYTEST_ARGS)

bench: venv-dev
	scripts/services.sh packages bench
	$(VENV)/bin/python -m benchmarks.run

clean:
	rm -rf $(VENV) instance .pytest_cache
