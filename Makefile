# tether: `make demo` runs an agent end to end; `make test` runs the whole suite.
# Both set everything up first (venv, Docker engine, sandbox image), and skip what is there.
VENV      := .venv
PY        := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Arize Phoenix, the real OTLP receiver the trace tests export to, in a venv of its own:
# it pins anthropic<2, which tether's lock does not allow.
PHOENIX_VERSION := 20.26.1
PHOENIX   := $(VENV)/phoenix/.installed-$(PHOENIX_VERSION)
# The egress proxy (mitmproxy) in a venv of its own, for the same reason: see egress/requirements.lock.
EGRESS    := $(VENV)/egress/.installed
PYTHON    ?= python3

.PHONY: setup deps docker image demo test chaos bench docs lint lock lock-egress stop-server clean

setup: deps image

deps: $(INSTALLED) $(EGRESS)
$(INSTALLED): requirements.lock pyproject.toml
	@printf '\033[1;34m==>\033[0m installing pinned dependencies into $(VENV)\n'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@# A real third-party MCP server for the tests (streamable HTTP), where npm is installed.
	@command -v npm >/dev/null && npm install --silent --no-audit --no-fund --prefix $(VENV)/npm \
		@modelcontextprotocol/server-everything@2026.8.31 || echo "npm not found: MCP HTTP tests will say so"
	@touch $@

$(EGRESS): egress/requirements.lock
	@printf '\033[1;34m==>\033[0m installing the egress proxy (mitmproxy) into $(VENV)/egress\n'
	@test -x $(VENV)/egress/bin/python || $(PYTHON) -m venv $(VENV)/egress
	@$(VENV)/egress/bin/pip install -q --disable-pip-version-check -r egress/requirements.lock
	@touch $@

$(PHOENIX):
	@printf '\033[1;34m==>\033[0m installing Arize Phoenix $(PHOENIX_VERSION) into $(VENV)/phoenix\n'
	@test -x $(VENV)/phoenix/bin/python || $(PYTHON) -m venv $(VENV)/phoenix
	@$(VENV)/phoenix/bin/pip install -q --disable-pip-version-check arize-phoenix==$(PHOENIX_VERSION)
	@touch $@

docker:
	@scripts/ensure_docker.sh

image: docker
	@sandbox/image/build.sh

demo: setup
	@$(VENV)/bin/tether demo

# The trace tests need Phoenix; `make demo` does not, so only `make test` installs it.
test: setup lint $(PHOENIX)
	@$(PY) -m pytest

# The chaos suite alone (`make test` runs it too): a Docker engine and a Temporal server of
# its own, faults at moments drawn from a printed seed (TETHER_CHAOS_SEED=<seed> replays it);
# its figures go to .tether/chaos/ (chaos.md, chaos.json).
chaos: setup
	@TETHER_CHAOS_REPORT=$${TETHER_CHAOS_REPORT:-.tether/chaos} $(PY) -m pytest tests/chaos -s

bench: setup
	@$(PY) -m bench

# The reference site (docs/, mkdocs.yml) into site/; --strict fails on a broken link or anchor.
docs: deps
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@printf '\033[1;34m==>\033[0m the docs are in site/index.html\n'

# mypy names the package through a link (the package's root is the repository's root);
# lint-imports checks the layers in pyproject.toml's [tool.importlinter].
lint: deps
	@$(VENV)/bin/ruff check .
	@mkdir -p $(VENV)/mypy-path && ln -sfn $(CURDIR) $(VENV)/mypy-path/tether
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache

# Regenerates the lock file from pyproject.toml (run after changing dependencies).
lock: deps
	@$(VENV)/bin/pip-compile -q --strip-extras --extra dev --no-header -o requirements.lock pyproject.toml

lock-egress: $(EGRESS)
	@$(VENV)/egress/bin/pip install -q --disable-pip-version-check --upgrade 'mitmproxy>=11,<12' uvloop
	@{ sed -n '/^#/p' egress/requirements.lock; $(VENV)/egress/bin/pip freeze; } > egress/requirements.lock.new
	@mv egress/requirements.lock.new egress/requirements.lock

stop-server:
	@$(VENV)/bin/tether stop-server

clean:
	rm -rf $(VENV) .tether
