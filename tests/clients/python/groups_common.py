"""Shared pieces of the consumer-group member scripts (`groups_member_*.py`).

Every member script, whatever its client, takes the same flags and writes the same event
log, one line per event, flushed at once so the log survives a SIGKILL of the process:

  own P,P,...     the partitions this member owns now, after an assignment change ("-": none)
  rec P O V       the record at partition P, offset O with value V was processed
  commit P N      a synchronous commit of offset N (the next record) for P was acknowledged
  commitfail MSG  a synchronous commit failed (the records before it count as uncommitted)
  error MSG       an error the client reported (for the test's failure message)
  closed          close() returned after the stop file appeared

A member processes the records of one poll, logging each `rec` line (and taking
`--process-ms` more, so a SIGKILL often lands between processing and commit), then commits their
next offsets synchronously and logs one `commit` line per partition. It runs until the stop
file exists, then closes the consumer (a graceful leave) and exits 0.
"""

import argparse
import os
import time


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--log", required=True, help="event log path (appended to)")
    p.add_argument("--stop-file", required=True, help="close and exit once this file exists")
    p.add_argument("--instance-id", default=None, help="group.instance.id (static member)")
    p.add_argument("--assignor", default=None, help="assignment strategy name")
    p.add_argument("--session-timeout-ms", type=int, default=6000)
    p.add_argument("--heartbeat-ms", type=int, default=1000)
    p.add_argument("--protocol", default="classic", choices=["classic", "consumer"])
    p.add_argument("--process-ms", type=int, default=0,
                   help="simulated processing time of each poll's records, before the commit")
    return p.parse_args()


class EventLog:
    """Append-only event log; every line is flushed to the OS before the call returns."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, line):
        self.f.write(line + "\n")
        self.f.flush()

    def own(self, partitions):
        self.write("own " + (",".join(str(p) for p in sorted(partitions)) or "-"))

    def close(self):
        self.f.close()


def simulate_processing(args):
    if args.process_ms:
        time.sleep(args.process_ms / 1000)


def stop_requested(args):
    return os.path.exists(args.stop_file)
