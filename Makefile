# socketse: `make example` runs an echo server and its client end to end;
# `make test` runs every test.  Tools install into .venv on first use.

PYTHON ?= python3
VENV := .venv
PORT ?= 8765

.PHONY: example test typecheck footprint clean

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
