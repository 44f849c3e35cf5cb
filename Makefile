# socketse: `make example` runs an echo server and its client end to end;
# `make test` runs every test.  Tools install into .venv on first use.

PYTHON ?= python3
VENV := .venv
PORT ?= 8765

.PHONY: example test typecheck footprint bench clean

$(VENV)/installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

example:
	@PYTHONPATH=. $(PYTHON) examples/echo_server.py --port $(PORT) & server=$$!; \
	$(PYTHON) examples/echo_client.py --port $(PORT) hello from socketse; status=$$?; \
	kill $$server; wait $$server 2>/dev/null; exit $$status

test: $(VENV)/installed
	$(VENV)/bin/python -m pytest

typecheck: $(VENV)/installed
	$(VENV)/bin/mypy --strict socketse.py

# A markdown table: socketse.py against the stdlib's socketserver.py (sizes, heap, imports).
footprint: $(VENV)/installed
	@$(VENV)/bin/python tools/footprint.py

# socketse against the stdlib's socketserver and a bare socket loop (bench/run.py, ~6 min):
# prints a table and writes bench/results.md and bench/results.svg.  BENCH_ARGS=--quick for
# a short run that writes nothing.  wrk drives the HTTP case where installed (apt-get install wrk).
bench: $(VENV)/installed
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
