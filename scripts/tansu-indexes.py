#!/usr/bin/env python3
"""Add the indexes tansu 0.6.0's sqlite storage lacks: usage: tansu-indexes.py DB

tansu looks up a record's headers with a join on header(topition, offset_id)
but creates no index for it, so every fetched message scans the whole
header table: fetches grow linearly slower with everything ever produced
(all of scimflow's messages carry headers), the broker pins a core, and
request latency climbs into seconds. Measured on this machine with 115,000
header rows: 102 creates/s before the index, 520/s after. The watermark
lookup by partition scans too (a small table; indexed while we are here).

This changes the local broker's storage only, never scimflow's design;
real Kafka (docker-compose.yml) needs nothing like it.
"""
import sqlite3
import sys
import time

INDEXES = [
    "CREATE INDEX IF NOT EXISTS scimflow_header_record ON header (topition, offset_id)",
    "CREATE INDEX IF NOT EXISTS scimflow_watermark_topition ON watermark (topition)",
]


def main(path: str) -> None:
    deadline = time.monotonic() + 60
    conn = sqlite3.connect(path, timeout=30)
    # The broker creates its schema as it starts; wait for it.
    while True:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if {"header", "watermark"} <= tables:
            break
        if time.monotonic() > deadline:
            sys.exit(f"{path}: tansu's tables did not appear")
        time.sleep(0.2)
    for statement in INDEXES:
        conn.execute(statement)
    conn.commit()
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
