# Runs first at every start, before main.py. The boot guard finishes an update
# a power cut interrupted and rolls back a new version that was never confirmed.
import boot_guard

# boot_guard.CONFIRM_AFTER_MS = 60000  # a version up this long counts as healthy
# boot_guard.WDT_MS = 8000  # hardware watchdog: a hang resets the board
boot_guard.boot()
