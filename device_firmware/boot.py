# Runs first at every start, before main.py. The boot guard finishes an update
# a power cut interrupted and rolls back a new version that was never confirmed.
import boot_guard

# boot_guard.CONFIRM_AFTER_MS = 30000  # healthy once up this long without a crash
# boot_guard.WDT_MS = 8000  # hardware watchdog: a hang resets the board
boot_guard.boot()
boot_guard.run_main()  # during a trial: runs main.py, resets if it raises
