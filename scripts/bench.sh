#!/usr/bin/env bash
# Prints the speed figures the project tracks, then one summary block. Usage: scripts/bench.sh
#
#   validate, 10,000 steps          criterion, benches/validate.rs
#   engine per step (asserts)       criterion, benches/engine.rs      aim: < 50 µs a step
#   durable journal per step        criterion, benches/journal.rs     aim: < 1 ms a step (chain)
#   resume of 10,000 ended steps    criterion, benches/journal.rs     aim: < 1 s
#   spawn of one step command       criterion, benches/spawn.rs       against a plain spawn
#   exec /bin/true x1000            the release binary against sh and bash loops
#                                   aim: < 1.2x the bash loop;
#                                   also its context switches a step (GNU time), and the
#                                   durable floor beside them (examples/durable_floor.rs: a
#                                   spawn and wait without a runtime and one synced write a step),
#                                   and that floor with the output kept (--capture), with
#                                   SQLite's commit (--sqlite), and with both (the design's floor);
#                                   then BENCH_ROUNDS (default 15) paired rounds of the runbook,
#                                   bash and the design's floor, their ratios' median and range
#   a step of that chain, split     scripts/step_split.py under perf: a step's parts (the start,
#                                   the program, its reaping, the way to the commit, the sync,
#                                   the way to the next start), runbook and the design's floor
#   peak memory, 10,000 steps       the release binary under GNU time        aim: < 100 MB
#   chain of 1,000 asserts          the release binary, journaled             aim: < 0.4 ms a step
#   for_each of 500,000 asserts     the release binary under GNU time: time, peak memory, and
#                                   the journal's size      aim: < 600 MB, journal < 200 MB
#   binary size, cold start         `runbook validate` of a small runbook     aim: < 10 ms
#   fan-out of exec items           for_each of /bin/true against a shell loop, and its peak
#                                   memory                          aim: < 1.5x, < 150 MB
#   parallel sleeps                 `sleep 2` all at once against shell `&` + `wait`  aim: < 1.3x
#
# BENCH_BLOCKS picks blocks by name (default: all): criterion (the four criterion benchmarks),
# exec, split, memory, chain, each, cold, fanout, parallel; e.g. BENCH_BLOCKS="chain memory each".
# FOR_EACH_ITEMS sets the for_each's item count (default 500000, the figure the aims are for);
# BENCH_FANOUT (default 50000) and BENCH_PARALLEL (default 1000) set how many exec items and
# sleeps; the fan-out is printed per item.
#
# Uses hyperfine when it is installed (or can be installed with apt), else times 3 runs.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Runs of the binary below are journaled here, on the disk, not in the user's state directory.
export RUNBOOK_STORE="sqlite:$work/store/runs.db"
step() { printf '\n==> %s\n' "$*" >&2; }
# Whether block $1 is to run (BENCH_BLOCKS).
want() { [[ " ${BENCH_BLOCKS:-all} " == *" all "* || " ${BENCH_BLOCKS:-} " == *" $1 "* ]]; }

# Installs an apt package when its command is missing and apt can be used; never fails.
ensure() {
  local command=$1 package=$2 sudo=()
  command -v "$command" >/dev/null 2>&1 && return 0
  [ -x "$command" ] && return 0
  command -v apt-get >/dev/null 2>&1 || return 0
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 0
    sudo=(sudo -n)
  fi
  step "installing $package"
  "${sudo[@]}" apt-get install -y -qq "$package" >/dev/null 2>&1 ||
    { "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 &&
      "${sudo[@]}" apt-get install -y -qq "$package" >/dev/null 2>&1; } || true
}

# The wall time of a command line, in seconds, its output discarded. (EPOCHREALTIME is
# written with the locale's decimal separator.)
wall_s() {
  local start=${EPOCHREALTIME/,/.} end
  eval "$1" >/dev/null 2>&1
  end=${EPOCHREALTIME/,/.}
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f\n", b - a }'
}

# The middle estimate of a criterion benchmark, in seconds: reads `cargo bench` output,
# where the `time:` line follows the benchmark's id (on the same line or the one before).
criterion_seconds() {
  local id=$1 file=$2
  awk -v id="$id" '
    index($0, id) == 1 { found = 1 }
    found && /time:/ {
      sub(/.*time: *\[/, ""); split($0, f, " ")
      scale = f[4] == "s" ? 1 : f[4] == "ms" ? 1e-3 : (f[4] == "µs" || f[4] == "us") ? 1e-6 : 1e-9
      printf "%.9f\n", f[3] * scale; exit
    }' "$file"
}

# `steps` `assert` steps: chained (each needing the one before) or independent.
assert_runbook() {
  local steps=$1 shape=$2
  awk -v n="$steps" -v shape="$shape" 'BEGIN {
    print "version: 1\nname: generated\nsteps:"
    for (i = 0; i < n; i++) {
      print "  - id: s" i
      print (shape == "chain" && i > 0) ? "    needs: [s" i - 1 "]" : "    needs: []"
      print "    assert: { that: '\''true'\'' }"
    }
  }'
}

# `steps` `exec` steps running /bin/true, each needing the one before.
exec_runbook() {
  awk -v n="$1" 'BEGIN {
    print "version: 1\nname: generated\nsteps:"
    for (i = 0; i < n; i++) {
      print "  - id: s" i
      print (i > 0) ? "    needs: [s" i - 1 "]" : "    needs: []"
      print "    exec: { command: [/bin/true] }"
    }
  }'
}

step "cargo build --release"
cargo build --locked --release --bin runbook --example durable_floor
binary=target/release/runbook

ensure /usr/bin/time time
peak_mb() {
  /usr/bin/time -v "$binary" run "$1" --output json >/dev/null 2>"$work/time.txt"
  awk -F: '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$work/time.txt"
}

if want criterion; then
  step "cargo bench (validate, engine, journal, spawn)"
  for bench in validate engine journal spawn; do
    cargo bench --locked --bench "$bench" -- --noplot 2>&1 | tee "$work/$bench.txt" |
      grep -E "^$bench|time:"
  done
  validate_s=$(criterion_seconds "validate/" "$work/validate.txt")
  chain_s=$(criterion_seconds "engine/chain of 1000 asserts" "$work/engine.txt")
  wide_s=$(criterion_seconds "engine/10000 independent asserts" "$work/engine.txt")
  journal_chain_s=$(criterion_seconds "journal/chain of 1000 asserts" "$work/journal.txt")
  journal_wide_s=$(criterion_seconds "journal/10000 independent asserts" "$work/journal.txt")
  resume_s=$(criterion_seconds "journal/resume of 10000 ended steps" "$work/journal.txt")
  spawn_plain_s=$(criterion_seconds "spawn/plain tokio spawn" "$work/spawn.txt")
  spawn_fork_s=$(criterion_seconds "spawn/with a pre_exec hook" "$work/spawn.txt")
  spawn_step_s=$(criterion_seconds "spawn/step command, marked and supervised" "$work/spawn.txt")
  spawn_here_s=$(criterion_seconds "spawn/step command, waited for on the run's thread" "$work/spawn.txt")
fi

if want exec; then
  step "exec /bin/true x1000: runbook against sh and bash loops"
  exec_runbook 1000 >"$work/exec.yaml"
  runbook_cmd="$binary run $work/exec.yaml --output json"
  # Two shell loops: `sh` (dash on Debian, the faster) and bash, the loop the aim is set
  # against; bash starts each program more slowly than dash.
  shell_cmd="sh -c 'for i in \$(seq 1000); do /bin/true; done'"
  bash_cmd="bash -c 'for i in \$(seq 1000); do /bin/true; done'"
  floor_cmd="target/release/examples/durable_floor $work 1000"
  # The floor with what this engine's design adds to each step: the program's output kept
  # and its process group stopped (--capture), the commit made by SQLite (--sqlite), both.
  capture_cmd="$floor_cmd --capture"
  sqlite_cmd="$floor_cmd --sqlite"
  design_cmd="$floor_cmd --capture --sqlite"
  ensure hyperfine hyperfine
  if command -v hyperfine >/dev/null 2>&1; then
    # No intermediate shell (-N); hyperfine discards the commands' output. Medians, since
    # a busy machine makes the odd run slow.
    hyperfine -N --warmup 2 --runs 10 --export-csv "$work/exec.csv" \
      -n runbook "$runbook_cmd" -n shell "$shell_cmd" -n bash "$bash_cmd" -n floor "$floor_cmd" \
      -n capture "$capture_cmd" -n sqlite "$sqlite_cmd" -n design "$design_cmd" >&2
    exec_runbook_s=$(awk -F, '$1 == "runbook" { print $4 }' "$work/exec.csv")
    exec_shell_s=$(awk -F, '$1 == "shell" { print $4 }' "$work/exec.csv")
    exec_bash_s=$(awk -F, '$1 == "bash" { print $4 }' "$work/exec.csv")
    exec_floor_s=$(awk -F, '$1 == "floor" { print $4 }' "$work/exec.csv")
    exec_capture_s=$(awk -F, '$1 == "capture" { print $4 }' "$work/exec.csv")
    exec_sqlite_s=$(awk -F, '$1 == "sqlite" { print $4 }' "$work/exec.csv")
    exec_design_s=$(awk -F, '$1 == "design" { print $4 }' "$work/exec.csv")
  else
    echo "hyperfine is not installed: timing 3 runs of each" >&2
    # The mean wall time of 3 runs of a shell command, in seconds.
    mean3() {
      local start end
      start=$(date +%s.%N)
      for _ in 1 2 3; do bash -c "$1"; done
      end=$(date +%s.%N)
      awk -v a="$start" -v b="$end" 'BEGIN { printf "%.6f\n", (b - a) / 3 }'
    }
    bash -c "$runbook_cmd >/dev/null" # warm up
    exec_runbook_s=$(mean3 "$runbook_cmd >/dev/null")
    exec_shell_s=$(mean3 "$shell_cmd")
    exec_bash_s=$(mean3 "$bash_cmd")
    exec_floor_s=$(mean3 "$floor_cmd")
    exec_capture_s=$(mean3 "$capture_cmd")
    exec_sqlite_s=$(mean3 "$sqlite_cmd")
    exec_design_s=$(mean3 "$design_cmd")
  fi
  # Paired rounds: the runbook, the bash loop and the design's floor one right after the
  # other, round after round. Each command's runs above come one after another, so a slow
  # spell of the machine (it moves these figures by a tenth from one minute to the next) can
  # fall on one command alone; in a round it weighs on all three. The ratios of each round,
  # then their median and range.
  rounds=${BENCH_ROUNDS:-15}
  step "exec /bin/true x1000: $rounds paired rounds of runbook, bash and the design's floor"
  : >"$work/rounds.txt"
  for _ in $(seq "$rounds"); do
    echo "$(wall_s "$runbook_cmd") $(wall_s "$bash_cmd") $(wall_s "$design_cmd")" >>"$work/rounds.txt"
  done
  # "median low high" of column $1 (an awk expression over $1 $2 $3) of the rounds.
  round_stats() {
    awk "{ print $1 }" "$work/rounds.txt" | sort -g |
      awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.6f %.6f %.6f\n", m, v[1], v[NR] }'
  }
  read -r paired_runbook paired_runbook_low paired_runbook_high <<<"$(round_stats '$1 / $2')"
  read -r paired_design paired_design_low paired_design_high <<<"$(round_stats '$3 / $2')"
  read -r paired_above paired_above_low paired_above_high <<<"$(round_stats '$1 - $3')"
  # Context switches a step (the engine's threads, its supervisor and the programs it ran), which
  # move far less than wall times with the machine's load: a shell loop makes about 4 an iteration.
  exec_switches=
  if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
    /usr/bin/time -v "$binary" run "$work/exec.yaml" --output json >/dev/null 2>"$work/exec-time.txt"
    exec_switches=$(awk -F: '/context switches/ { n += $2 } END { printf "%.0f", n / 1000 }' \
      "$work/exec-time.txt")
  fi
fi

if want split; then
  # Where a step of the chain goes, from the kernel's events (scripts/step_split.py): the
  # runbook and the design's floor, three times each, alternating; the median of each part.
  step "exec /bin/true x1000: each step split into its parts, runbook and the design's floor"
  [ -f "$work/exec.yaml" ] || exec_runbook 1000 >"$work/exec.yaml"
  split_runbook= split_design=
  if command -v perf >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 &&
    perf record -q -e sched:sched_process_exec -o "$work/probe.data" -- true >/dev/null 2>&1; then
    : >"$work/split-runbook.txt"
    : >"$work/split-design.txt"
    for _ in 1 2 3; do
      python3 scripts/step_split.py /bin/true -- "$binary" run "$work/exec.yaml" --output json \
        >>"$work/split-runbook.txt"
      python3 scripts/step_split.py /bin/true -- target/release/examples/durable_floor "$work" 1000 \
        --capture --sqlite >>"$work/split-design.txt"
    done
    # The median of each column over the three runs.
    split_medians() {
      awk '{ for (i = 1; i <= 7; i++) v[i, NR] = $i } END {
        for (i = 1; i <= 7; i++) {
          a = v[i, 1]; b = v[i, 2]; c = v[i, 3]
          m = (a <= b) ? ((b <= c) ? b : (a <= c) ? c : a) : ((a <= c) ? a : (b <= c) ? c : b)
          printf "%s%.0f", (i > 1 ? " " : ""), m
        }
      }' "$1"
    }
    split_runbook=$(split_medians "$work/split-runbook.txt")
    split_design=$(split_medians "$work/split-design.txt")
  else
    echo "perf cannot record the kernel's events here (it needs root or kernel.perf_event_paranoid=-1): no split" >&2
  fi
fi

if want memory; then
  step "peak memory, 10,000 steps"
  assert_runbook 10000 independent >"$work/wide.yaml"
  assert_runbook 10000 chain >"$work/chain.yaml"
  if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
    peak_wide=$(peak_mb "$work/wide.yaml")
    peak_chain=$(peak_mb "$work/chain.yaml")
    peak="$peak_wide MB independent, $peak_chain MB chained"
  else
    peak="(GNU time is not installed)"
  fi
fi

if want chain; then
  step "chain of 1,000 assert steps through the binary"
  assert_runbook 1000 chain >"$work/chain1k.yaml"
  # Best of 5 whole runs, each in a store of its own: the journal starts empty every time.
  best_chain_s=
  for attempt in 1 2 3 4 5; do
    start=$(date +%s.%N)
    RUNBOOK_STORE="sqlite:$work/chain-$attempt/runs.db" \
      "$binary" run "$work/chain1k.yaml" --output json >/dev/null
    end=$(date +%s.%N)
    best_chain_s=$(awk -v a="$start" -v b="$end" -v best="$best_chain_s" \
      'BEGIN { t = b - a; if (best == "" || t < best) best = t; printf "%.6f\n", best }')
  done
fi

if want each; then
  step "for_each of ${FOR_EACH_ITEMS:=500000} assert items"
  cat >"$work/each.yaml" <<YAML
version: 1
name: each
steps:
  - id: each
    for_each: '[range($FOR_EACH_ITEMS)]'
    assert: { that: 'true' }
YAML
  each_store="$work/each/runs.db"
  if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
    RUNBOOK_STORE="sqlite:$each_store" /usr/bin/time -v "$binary" run "$work/each.yaml" \
      --output json >/dev/null 2>"$work/each-time.txt"
    # The wall time as GNU time writes it: [h:]mm:ss.ss
    each_s=$(awk -F': ' '/Elapsed \(wall clock\)/ {
      n = split($2, f, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + f[i]; print s }' \
      "$work/each-time.txt")
    each_mb=$(awk -F: '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' \
      "$work/each-time.txt")
    # The database and what its write-ahead log still holds: the journal's whole size.
    each_bytes=0
    for file in "$each_store" "$each_store-wal"; do
      [ -f "$file" ] && each_bytes=$((each_bytes + $(stat -c %s "$file")))
    done
    each_journal_mb=$(awk -v b="$each_bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
    each="$(awk -v s="$each_s" -v n="$FOR_EACH_ITEMS" \
      'BEGIN { printf "%.1f s (%.0f µs an item)", s, s / n * 1e6 }'), peak $each_mb MB, journal $each_journal_mb MB"
  else
    each="(GNU time is not installed)"
  fi
fi

if want cold; then
  step "binary size and cold start"
  binary_mb=$(stat -c %s "$binary" | awk '{ printf "%.1f", $1 / 1048576 }')
  cat >"$work/small.yaml" <<'YAML'
version: 1
name: small
steps:
  - id: hello
    assert: { that: 'true' }
YAML
  if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --warmup 3 --runs 20 --export-csv "$work/cold.csv" \
      -n validate "$binary validate $work/small.yaml" >&2
    cold_s=$(awk -F, '$1 == "validate" { print $7 }' "$work/cold.csv") # the fastest run
  else
    cold_s=
    for _ in $(seq 20); do
      cold_s=$(awk -v t="$(wall_s "$binary validate $work/small.yaml")" -v best="$cold_s" \
        'BEGIN { if (best == "" || t < best) best = t; printf "%.6f\n", best }')
    done
  fi
fi

# The wall time of two commands side by side, in seconds, "A B": medians of `runs` runs with
# hyperfine (no intermediate shell), else means of as many runs of each.
time_pair() {
  local runs=$1 name_a=$2 command_a=$3 name_b=$4 command_b=$5
  if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --runs "$runs" --export-csv "$work/pair.csv" \
      -n "$name_a" "$command_a" -n "$name_b" "$command_b" >&2
    awk -F, -v a="$name_a" -v b="$name_b" '
      $1 == a { ta = $4 } $1 == b { tb = $4 } END { print ta, tb }' "$work/pair.csv"
  else
    local start middle end
    start=$(date +%s.%N)
    for _ in $(seq "$runs"); do bash -c "$command_a >/dev/null"; done
    middle=$(date +%s.%N)
    for _ in $(seq "$runs"); do bash -c "$command_b >/dev/null"; done
    end=$(date +%s.%N)
    awk -v s="$start" -v m="$middle" -v e="$end" -v n="$runs" \
      'BEGIN { printf "%.6f %.6f\n", (m - s) / n, (e - m) / n }'
  fi
}

if want fanout; then
  fanout=${BENCH_FANOUT:-50000}
  step "fan-out: for_each of $fanout exec /bin/true items against a shell loop"
  cat >"$work/fanout.yaml" <<YAML
version: 1
name: fanout
steps:
  - id: items
    needs: []
    for_each: "[range($fanout)]"
    exec: { command: [/bin/true] }
YAML
  read -r fanout_runbook_s fanout_shell_s < <(time_pair 3 \
    runbook "$binary run $work/fanout.yaml --output json" \
    shell "sh -c 'for i in \$(seq $fanout); do /bin/true; done'")
  if [ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1; then
    fanout_peak="$(peak_mb "$work/fanout.yaml") MB"
  else
    fanout_peak="(GNU time is not installed)"
  fi
fi

if want parallel; then
  parallel=${BENCH_PARALLEL:-1000}
  step "$parallel parallel sleep 2: runbook against shell & and wait"
  awk -v n="$parallel" 'BEGIN {
    print "version: 1\nname: parallel\nmax_parallel: " n "\nsteps:"
    for (i = 0; i < n; i++) {
      print "  - id: s" i
      print "    needs: []"
      print "    exec: { command: [sleep, \"2\"] }"
    }
  }' >"$work/parallel.yaml"
  read -r parallel_runbook_s parallel_shell_s < <(time_pair 3 \
    runbook "$binary run $work/parallel.yaml --output json" \
    shell "bash -c 'for i in \$(seq $parallel); do sleep 2 & done; wait'")
fi

per_step() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.1f µs/step", s / n * 1e6 }'; }
overhead() { awk -v j="$1" -v e="$2" -v n="$3" 'BEGIN { printf "%.1f µs/step", (j - e) / n * 1e6 }'; }
echo
if want criterion; then
  cat <<EOF
validate, 10,000 steps:                 $(awk -v s="$validate_s" 'BEGIN { printf "%.2f s", s }')
engine, chain of 1,000 assert steps:    $(per_step "$chain_s" 1000)
engine, 10,000 independent asserts:     $(per_step "$wide_s" 10000)
journaled, chain of 1,000 asserts:      $(per_step "$journal_chain_s" 1000) (journal: $(overhead "$journal_chain_s" "$chain_s" 1000))
journaled, 10,000 independent asserts:  $(per_step "$journal_wide_s" 10000) (journal: $(overhead "$journal_wide_s" "$wide_s" 10000))
resume of 10,000 ended steps:           $(awk -v s="$resume_s" 'BEGIN { printf "%.0f ms", s * 1e3 }')
spawn of one step command (supervised): $(awk -v s="$spawn_step_s" -v h="$spawn_here_s" -v p="$spawn_plain_s" \
    -v f="$spawn_fork_s" 'BEGIN { printf "%.0f µs, waited for on the calling thread %.0f µs (plain spawn %.0f µs, full fork %.0f µs)", s * 1e6, h * 1e6, p * 1e6, f * 1e6 }')
EOF
fi
if want exec; then
  echo "exec /bin/true x1000 (journaled): runbook $(awk -v r="$exec_runbook_s" -v s="$exec_shell_s" \
    -v b="$exec_bash_s" 'BEGIN { printf "%.2f s, shell %.2f s (ratio %.2f), bash %.2f s (ratio %.2f)", r, s, r / s, b, r / b }')${exec_switches:+, $exec_switches context switches a step}"
  echo "durable floor of that chain:            $(awk -v f="$exec_floor_s" -v s="$exec_shell_s" -v r="$exec_runbook_s" \
    -v b="$exec_bash_s" 'BEGIN { printf "%.2f s (ratio %.2f to the shell, %.2f to bash; runbook %.0f µs a step above it)", f, f / s, f / b, (r - f) * 1000 }')"
  echo "  with the output kept (--capture):     $(awk -v c="$exec_capture_s" -v b="$exec_bash_s" 'BEGIN { printf "%.2f s (ratio %.2f to bash)", c, c / b }')"
  echo "  with SQLite's commit (--sqlite):      $(awk -v c="$exec_sqlite_s" -v b="$exec_bash_s" 'BEGIN { printf "%.2f s (ratio %.2f to bash)", c, c / b }')"
  echo "  with both, the design's floor:        $(awk -v d="$exec_design_s" -v b="$exec_bash_s" -v r="$exec_runbook_s" \
    'BEGIN { printf "%.2f s (ratio %.2f to bash; runbook %.0f µs a step above it, %.0f µs left under the aim)", d, d / b, (r - d) * 1000, (1.2 * b - d) * 1000 }')"
  echo "$(printf '%-40s' "$rounds paired rounds, to bash:")$(awk -v r="$paired_runbook" -v rl="$paired_runbook_low" \
    -v rh="$paired_runbook_high" -v d="$paired_design" -v dl="$paired_design_low" -v dh="$paired_design_high" \
    'BEGIN { printf "runbook %.2f (%.2f to %.2f), design'"'"'s floor %.2f (%.2f to %.2f)", r, rl, rh, d, dl, dh }')"
  echo "$(printf '%-40s' "  runbook above the design's floor:")$(awk -v a="$paired_above" -v l="$paired_above_low" \
    -v h="$paired_above_high" 'BEGIN { printf "%.0f µs a step (%.0f to %.0f), median of the rounds", a * 1000, l * 1000, h * 1000 }')"
fi
if want split && [ -n "$split_runbook" ]; then
  echo "a step of that chain, split (µs, traced; runbook / design's floor):"
  echo "  $(awk -v r="$split_runbook" -v d="$split_design" 'BEGIN {
    split(r, a, " "); split(d, b, " ")
    split("start,program,reaped,to commit,sync,to next start,in all", name, ",")
    for (i = 1; i <= 7; i++) printf "%s%s %d / %d", (i > 1 ? ", " : ""), name[i], a[i], b[i]
  }')"
fi
if want memory; then
  echo "peak memory, 10,000 assert steps:       $peak"
fi
if want chain; then
  echo "chain of 1,000 asserts (the binary):    $(per_step "$best_chain_s" 1000) (best of 5 whole runs)"
fi
if want each; then
  echo "for_each of $FOR_EACH_ITEMS asserts:   $each"
fi
if want cold; then
  echo "binary:                                 $binary_mb MB, cold start $(awk -v s="$cold_s" \
    'BEGIN { printf "%.1f ms", s * 1e3 }') (validate, fastest of 20)"
fi
if want fanout; then
  echo "$(printf '%-40s' "fan-out, $fanout exec items:")$(awk -v r="$fanout_runbook_s" \
    -v s="$fanout_shell_s" -v n="$fanout" 'BEGIN { printf "runbook %.2f ms/item, shell %.2f ms/item (ratio %.2f)", r / n * 1e3, s / n * 1e3, r / s }'); peak $fanout_peak"
fi
if want parallel; then
  echo "$(printf '%-40s' "$parallel parallel sleep 2:")$(awk -v r="$parallel_runbook_s" \
    -v s="$parallel_shell_s" 'BEGIN { printf "runbook %.2f s, shell %.2f s (ratio %.2f)", r, s, r / s }')"
fi
