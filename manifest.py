# Freezes socketse into MicroPython firmware: its bytecode then runs from flash,
# and importing it costs a tight board far less heap than loading the .mpy.
# From a board's manifest:  include("path/to/socketse/manifest.py")
# MicroPython's manifest tools run each included manifest from its own
# directory, so the path below holds wherever this checkout sits.
module("socketse.py")
