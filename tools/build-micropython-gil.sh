#!/bin/sh
# MicroPython's unix port with its threads under a GIL, as the ESP32 port
# runs them: usage build-micropython-gil.sh OUT SOURCES.tar.xz
#
# The unix port's default threads run without a GIL, and MicroPython calls
# them unsafe (sys.implementation._thread == "unsafe"): a collection lets
# the other threads run on, and one emergency MemoryError and its traceback
# buffer serve every thread.  With a heap exhausted by many threads at once
# it crashes now and then whatever the program does (tests/test_faults.py
# measured 3 runs in 25; built from the same sources with the GIL, 0 in 25).
# The sources are the boards' tarball (../shared/boards/mpy-lwip-src.tar.xz):
# the host's sockets, no frozen modules, no ffi, ssl or btree.  About 20 s.
set -eu
OUT=${1:?usage: build-micropython-gil.sh OUT SOURCES.tar.xz}
SOURCES=${2:?usage: build-micropython-gil.sh OUT SOURCES.tar.xz}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tar xJf "$SOURCES" -C "$WORK"
VARIANT="$WORK/ports/unix/variants/gil"
mkdir -p "$VARIANT"
printf '%s\n' '#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)' \
    '#include "../mpconfigvariant_common.h"' >"$VARIANT/mpconfigvariant.h"
printf '%s\n' 'FROZEN_MANIFEST =' 'MICROPY_PY_BTREE = 0' 'MICROPY_PY_FFI = 0' \
    'MICROPY_PY_SSL = 0' 'MICROPY_SSL_MBEDTLS = 0' >"$VARIANT/mpconfigvariant.mk"
if ! make -C "$WORK/ports/unix" -j"$(nproc)" VARIANT=gil MICROPY_PY_THREAD_GIL=1 \
        >"$WORK/build.log" 2>&1; then
    tail -30 "$WORK/build.log" >&2
    exit 1
fi
mkdir -p "$(dirname "$OUT")"
cp "$WORK/ports/unix/build-gil/micropython" "$OUT"
echo "built $OUT ($(cat "$WORK/SOURCES"), threads under a GIL)"
