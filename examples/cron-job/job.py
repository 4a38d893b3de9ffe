"""cron-job: one run of a scheduled task; the exit status is the result."""
import datetime
import shutil

usage = shutil.disk_usage("/")
print("%s: disk %.0f%% used" % (datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              100.0 * usage.used / usage.total))
