"""RQ queue names: one queue per kind of workload, so a long refresh never holds up a send."""

DEFAULT = "default"
IMPORTS = "imports"
SEGMENTS = "segments"
SENDS = "sends"
REPORTS = "reports"

QUEUE_NAMES: tuple[str, ...] = (DEFAULT, IMPORTS, SEGMENTS, SENDS, REPORTS)
