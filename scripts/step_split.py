#!/usr/bin/env python3
"""Splits each step of a chain of programs into its parts, from the kernel's own events.

Usage: step_split.py PROGRAM -- COMMAND [ARG...]

Runs COMMAND under `perf record` and follows every process it starts that runs PROGRAM
(`/bin/true` in `scripts/bench.sh`). For each such program but the last it takes, in order:

  start          the program's process made (fork or clone)  -> its exec
  program        its exec                                    -> its exit
  reaped         its exit     -> the parent's next wait4 or waitid returns
  to commit      reaped       -> the next fsync or fdatasync begins (the journal's commit)
  sync           that sync begins -> it returns
  to next start  it returns   -> the next program's process is made

and prints one line: the median of each part over the steps, then of the whole step, in
microseconds. Steps without a sync between two programs are left out (the line says how many
were kept). The tracing itself adds a few microseconds to each event, the same for any
command, so compare commands measured this way, not these figures with untraced times.

Needs `perf` allowed to record tracepoints (root, or kernel.perf_event_paranoid at -1).
"""

import bisect
import os
import re
import statistics
import subprocess
import sys
import tempfile

EVENTS = [
    "sched:sched_process_fork",
    "sched:sched_process_exec",
    "sched:sched_process_exit",
    "syscalls:sys_exit_wait4",
    "syscalls:sys_exit_waitid",
    "syscalls:sys_enter_fsync",
    "syscalls:sys_exit_fsync",
    "syscalls:sys_enter_fdatasync",
    "syscalls:sys_exit_fdatasync",
]
PARTS = ["start", "program", "reaped", "to commit", "sync", "to next start"]
LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)$")


def record(command, data):
    events = ",".join(EVENTS)
    subprocess.run(
        ["perf", "record", "-q", "-e", events, "-o", data, "--", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    script = subprocess.run(
        ["perf", "script", "-i", data, "-F", "pid,time,event,trace"],
        capture_output=True,
        text=True,
        check=True,
    )
    return script.stdout.splitlines()


def parse(lines):
    """(time, pid, event, trace) of each event, in time order."""
    events = []
    for line in lines:
        match = LINE.match(line)
        if match:
            pid, time, event, trace = match.groups()
            events.append((float(time), int(pid), event.split(":")[-1], trace))
    events.sort(key=lambda e: e[0])
    return events


def steps(events, program):
    """The parts of each step, in seconds, as a list of dicts."""
    made = {}
    for time, _, event, trace in events:
        if event == "sched_process_fork":
            child = re.search(r"child_pid=(\d+)", trace)
            if child:
                made[int(child.group(1))] = time
    runs = []  # (made, exec, exit) of each program, in the order they were made
    execs = {}
    exits = {}
    for time, pid, event, trace in events:
        if event == "sched_process_exec" and f"filename={program} " in f"{trace} ":
            execs[pid] = time
        elif event == "sched_process_exit" and pid in execs:
            exits[pid] = time
    for pid, exec_time in execs.items():
        if pid in made and pid in exits:
            runs.append((made[pid], exec_time, exits[pid]))
    runs.sort()
    times = [e[0] for e in events]
    found = []

    def first_after(at, until, names):
        """The time of the first of `names` after `at` and before `until`, if any."""
        i = bisect.bisect_right(times, at)
        while i < len(events) and events[i][0] < until:
            if events[i][2] in names:
                return events[i][0]
            i += 1
        return None

    for (made_at, exec_at, exit_at), (next_made, _, _) in zip(runs, runs[1:]):
        reaped = first_after(exit_at, next_made, ("sys_exit_wait4", "sys_exit_waitid"))
        if reaped is None:
            continue
        sync_in = first_after(reaped, next_made, ("sys_enter_fsync", "sys_enter_fdatasync"))
        if sync_in is None:
            continue
        sync_out = first_after(sync_in, next_made, ("sys_exit_fsync", "sys_exit_fdatasync"))
        if sync_out is None:
            continue
        found.append(
            {
                "start": exec_at - made_at,
                "program": exit_at - exec_at,
                "reaped": reaped - exit_at,
                "to commit": sync_in - reaped,
                "sync": sync_out - sync_in,
                "to next start": next_made - sync_out,
                "in all": next_made - made_at,
            }
        )
    return found, len(runs)


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    program, command = argv[1], argv[3:]
    with tempfile.TemporaryDirectory() as work:
        found, made = steps(parse(record(command, os.path.join(work, "perf.data"))), program)
    if not found:
        print(f"no step found: {made} runs of {program}, none with a sync after it", file=sys.stderr)
        return 1
    medians = [statistics.median(s[part] for s in found) * 1e6 for part in PARTS + ["in all"]]
    print(" ".join(f"{m:.0f}" for m in medians), len(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
