#!/usr/bin/env bash
# Figures of `runbook serve`: an idle serve with 100 schedules (RSS, CPU), and how close to
# its due time a fire starts its run. Usage: scripts/bench-serve.sh [SECONDS]
#
#   idle RSS, 100 schedules          VmRSS of the serve process            aim: < 30 MB
#   idle CPU, 100 schedules          utime+stime over SECONDS (default 20)  aim: ~0%
#   fire precision                   `fire` log lines: late_ms (due -> fired), and the
#                                    `run started` line's time minus the due time  aim: < 100 ms
#
# Uses target/release/runbook (built if missing), or $RUNBOOK_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
bin=${RUNBOOK_BIN:-target/release/runbook}
[ -x "$bin" ] || cargo build --release --quiet
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 2; }

work=$(mktemp -d)
serve_pid=
cleanup() {
  # Only the serve this script started, by its pid.
  [ -n "$serve_pid" ] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export RUNBOOK_STORE="sqlite:$work/runs.db"
ticks=$(getconf CLK_TCK)

cat > "$work/noop.yaml" <<'YAML'
version: 1
name: noop
steps:
  - id: done
    assert:
      that: "true"
YAML

# 100 schedules that do not fire while measured: daily, at an hour that is not now.
hour=$(( ($(date -u +%-H) + 12) % 24 ))
{
  echo "schedules:"
  for i in $(seq 1 100); do
    printf '  - {name: s%03d, runbook: noop.yaml, cron: "0 %d %d * * *", time_zone: Europe/Berlin}\n' \
      "$i" "$((i % 60))" "$hour"
  done
} > "$work/idle.yaml"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

"$bin" serve --config "$work/idle.yaml" --log-format json 2> "$work/idle.log" &
serve_pid=$!
sleep 3
start=$(cpu_ticks "$serve_pid")
sleep "$seconds"
end=$(cpu_ticks "$serve_pid")
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$serve_pid/status")
kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=
cpu=$(awk -v t=$((end - start)) -v hz="$ticks" -v s="$seconds" 'BEGIN {printf "%.2f", 100 * t / hz / s}')

# Precision: one schedule every second, a run per fire.
cat > "$work/tick.yaml" <<'YAML'
schedules:
  - {name: tick, runbook: noop.yaml, cron: "* * * * * *"}
YAML
"$bin" serve --config "$work/tick.yaml" --log-format json 2> "$work/tick.log" &
serve_pid=$!
sleep "$seconds"
kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=

late=$(jq -r 'select(.message == "fire") | .late_ms' "$work/tick.log" | sort -n)
started=$(jq -r 'select(.message == "run started") |
  ((.timestamp | sub("\\.(?<f>[0-9]+)Z$"; "Z") | fromdateiso8601) + ("0." + (.timestamp | capture("\\.(?<f>[0-9]+)Z$").f) | tonumber))
  - (.fire | sub("\\[.*\\]$"; "") | sub("(?<o>[+-][0-9]{2}:[0-9]{2})$"; "Z") | fromdateiso8601)
  | . * 1000 | floor' "$work/tick.log" | sort -n)
stat() {
  awk '{a[NR] = $1}
    END {
      if (NR == 0) { print "none"; exit }
      p = int(NR * 0.95 + 0.5); if (p < 1) p = 1
      printf "n=%d median=%d p95=%d max=%d ms", NR, a[int((NR + 1) / 2)], a[p], a[NR]
    }'
}

echo
echo "== runbook serve ($("$bin" --version))"
printf 'idle, 100 schedules: RSS %.1f MB, CPU %s%% over %ss\n' "$(echo "$rss_kb / 1024" | bc -l)" "$cpu" "$seconds"
echo "fire, due -> fired (late_ms):      $(echo "$late" | stat)"
echo "fire, due -> run started (journal): $(echo "$started" | stat)"
