#!/usr/bin/env bash
# End-to-end check of the Flink sandbox and its stateful job, by hand or before relying on
# them: starts a sandbox, runs three copies of the job over REST, takes savepoints (plain,
# stop-with-savepoint, one that must fail), restores from a savepoint and from a retained
# checkpoint, drives the same through bin/flink, then stops everything.
#
# Usage: scripts/flink/smoke.sh [DIR]     (DIR: sandbox dir, default a new temp dir, removed
# after a clean pass). KEEP=1 leaves the sandbox running. Needs curl and jq.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
SANDBOX="$ROOT/scripts/flink-sandbox.sh"
if [[ $# -ge 1 ]]; then
  DIR="$1"
  OWN_DIR=0
else
  DIR="$(mktemp -d "${TMPDIR:-/tmp}/flink-smoke.XXXXXX")"
  OWN_DIR=1
fi
PASSED=0
FAILED=0

for cmd in curl jq; do
  command -v "$cmd" >/dev/null 2>&1 || {
    echo "smoke: '$cmd' is needed" >&2
    exit 1
  }
done

say() { printf '\n== %s\n' "$*"; }
ok() {
  PASSED=$((PASSED + 1))
  printf 'ok: %s\n' "$*"
}
bad() {
  FAILED=$((FAILED + 1))
  printf 'FAILED: %s\n' "$*"
}
check() { # check DESCRIPTION COMMAND...
  local what="$1"
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
now_ms() { date +%s%3N; }
trigger_id() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

finish() {
  local rc=$?
  if [[ "${KEEP:-0}" != 1 ]]; then
    "$SANDBOX" stop "$DIR" >/dev/null 2>&1 || true
    if ps -eo args= | awk -v pat="--configDir $DIR/conf " '$1 ~ /java$/ && index($0 " ", pat)' | grep -q .; then
      echo "FAILED: java processes of $DIR are still running"
      rc=1
    fi
  fi
  if ((FAILED > 0 && rc == 0)); then rc=1; fi
  if ((rc == 0 && OWN_DIR == 1)) && [[ "${KEEP:-0}" != 1 ]]; then
    rm -rf "$DIR"
  else
    printf '\nsandbox dir (logs, checkpoints, savepoints): %s\n' "$DIR"
  fi
  printf '\nsmoke: %d passed, %d failed\n' "$PASSED" "$FAILED"
  exit "$rc"
}
trap finish EXIT

# api METHOD PATH [JSON]: the response body.
api() {
  local method="$1" path="$2" body="${3:-}"
  local -a args=(-sS -X "$method" "$FLINK_URL$path")
  [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' -d "$body")
  curl "${args[@]}"
  echo
}

# wait_until SECONDS COMMAND...: retries COMMAND every 0.5 s.
wait_until() {
  local limit="$1" start=$SECONDS
  shift
  until "$@"; do
    ((SECONDS - start < limit)) || return 1
    sleep 0.5
  done
}

job_state() { api GET "/jobs/$1" | jq -r .state; }
state_is() { [[ "$(job_state "$1")" == "$2" ]]; }
is_running() { state_is "$1" RUNNING; }
has_checkpoint() { [[ "$(api GET "/jobs/$1/checkpoints" | jq -r '.latest.completed.id // empty')" != "" ]]; }
counter_vertex() { api GET "/jobs/$1" | jq -r '.vertices[] | select(.name | startswith("counter")) | .id'; }

# metric JOB NAME: the gauge summed over the counter operator's subtasks (waits for it).
metric() {
  local jid="$1" name="$2" vid value=""
  vid="$(counter_vertex "$jid")"
  local start=$SECONDS
  while ((SECONDS - start < 30)); do
    value="$(api GET "/jobs/$jid/vertices/$vid/subtasks/metrics?get=counter.$name" | jq -r '.[0].sum // empty')"
    [[ -n "$value" ]] && break
    sleep 0.5
  done
  printf '%.0f\n' "${value:-0}"
}

# poll_savepoint JOB TRIGGER: the final status JSON (bounded wait).
poll_savepoint() {
  local jid="$1" tid="$2" out start=$SECONDS
  while ((SECONDS - start < 120)); do
    out="$(api GET "/jobs/$jid/savepoints/$tid")"
    if [[ "$(jq -r .status.id <<<"$out")" == COMPLETED ]]; then
      printf '%s\n' "$out"
      return 0
    fi
    sleep 0.2
  done
  printf '%s\n' "$out"
  return 1
}

run_job() { # run_job NAME [SAVEPOINT [JOB ARGS...]]: prints the job id
  local name="$1" sp="${2:-}" body extra="[]"
  shift $(($# < 2 ? $# : 2))
  (($# == 0)) || extra="$(printf '%s\n' "$@" | jq -R . | jq -sc .)"
  body="$(jq -nc --arg n "$name" --arg sp "$sp" --argjson extra "$extra" \
    '{programArgsList: (["--name", $n] + $extra)} + (if $sp == "" then {} else {savepointPath: $sp} end)')"
  api POST "/jars/$JAR_ID/run" "$body" | jq -r .jobid
}

wait_ready() { # RUNNING and a completed checkpoint
  wait_until 60 is_running "$1" && wait_until 60 has_checkpoint "$1"
}

uri_path() { local p="${1#file:}"; printf '/%s\n' "${p#"${p%%[!/]*}"}"; }

say "fetch (twice: the second must be cached)"
t=$(now_ms)
"$SANDBOX" fetch
echo "fetch: $(($(now_ms) - t)) ms"
t=$(now_ms)
"$SANDBOX" fetch
echo "cached fetch: $(($(now_ms) - t)) ms"

say "start in $DIR"
t=$(now_ms)
"$SANDBOX" start "$DIR"
echo "start: $(($(now_ms) - t)) ms"
# shellcheck source=/dev/null
source "$DIR/env"
api GET /overview | jq -c .

say "upload the job jar and run three copies"
JAR_ID="$(curl -sS -X POST -F "jarfile=@$FLINK_JOB_JAR" "$FLINK_URL/jars/upload" | jq -r '.filename | split("/") | last')"
echo "jar id: $JAR_ID"
A="$(run_job smoke-a)"
B="$(run_job smoke-b)"
C="$(run_job smoke-c "" --checkpoint-dir "file://$DIR/custom-checkpoints")"
echo "jobs: $A $B $C"
for j in "$A" "$B" "$C"; do
  check "job $j RUNNING with a completed checkpoint" wait_ready "$j"
done
api GET /jobs/overview | jq -c '[.jobs[] | {jid, name, state}]'
check "fresh start: stateCount > 0" test "$(metric "$A" stateCount)" -gt 0
check "fresh start: restoredCount == 0" test "$(metric "$A" restoredCount)" -eq 0

say "savepoint of smoke-a"
TID="$(trigger_id)"
t=$(now_ms)
api POST "/jobs/$A/savepoints" "{\"target-directory\":\"$FLINK_SAVEPOINTS\",\"cancel-job\":false,\"triggerId\":\"$TID\"}"
SP_A_JSON="$(poll_savepoint "$A" "$TID")"
echo "savepoint: $(($(now_ms) - t)) ms: $SP_A_JSON"
SP_A="$(jq -r '.operation.location // empty' <<<"$SP_A_JSON")"
check "savepoint location reported" test -n "$SP_A"
check "savepoint _metadata on disk" test -f "$(uri_path "$SP_A")/_metadata"
check "smoke-a still RUNNING" is_running "$A"

say "stop smoke-b with a savepoint, restore it"
TID="$(trigger_id)"
api POST "/jobs/$B/stop" "{\"targetDirectory\":\"$FLINK_SAVEPOINTS\",\"drain\":false,\"triggerId\":\"$TID\"}"
SP_B_JSON="$(poll_savepoint "$B" "$TID")"
echo "$SP_B_JSON"
SP_B="$(jq -r '.operation.location // empty' <<<"$SP_B_JSON")"
check "stop-with-savepoint location reported" test -n "$SP_B"
wait_until 30 state_is "$B" FINISHED || true
echo "smoke-b state after stop: $(job_state "$B")"
B2="$(run_job smoke-b-restored "$SP_B")"
check "restored smoke-b RUNNING" wait_ready "$B2"
RESTORED="$(api GET "/jobs/$B2/checkpoints" | jq -c .latest.restored)"
echo "latest.restored: $RESTORED"
check "latest.restored.external_path is the savepoint" test "$(jq -r .external_path <<<"$RESTORED")" = "$SP_B"
check "restored job: restoredCount > 0" test "$(metric "$B2" restoredCount)" -gt 0
check "restored job: seqMismatches == 0" test "$(metric "$B2" seqMismatches)" -eq 0

say "cancel smoke-c, restore from its retained checkpoint"
api PATCH "/jobs/$C?mode=cancel" >/dev/null
check "smoke-c CANCELED" wait_until 30 state_is "$C" CANCELED
CK_C="$(api GET "/jobs/$C/checkpoints" | jq -r .latest.completed.external_path)"
echo "latest.completed.external_path: $CK_C"
check "retained checkpoint on disk" test -f "$(uri_path "$CK_C")/_metadata"
check "--checkpoint-dir honoured" test "${CK_C#*"$DIR/custom-checkpoints/"}" != "$CK_C"
C2="$(run_job smoke-c-from-checkpoint "$CK_C")"
check "smoke-c from checkpoint RUNNING" wait_ready "$C2"
RESTORED="$(api GET "/jobs/$C2/checkpoints" | jq -c .latest.restored)"
echo "latest.restored: $RESTORED"
check "latest.restored.external_path is the checkpoint" test "$(jq -r .external_path <<<"$RESTORED")" = "$CK_C"
check "checkpoint restore: restoredCount > 0" test "$(metric "$C2" restoredCount)" -gt 0

say "savepoint into a directory that cannot be written"
TID="$(trigger_id)"
api POST "/jobs/$A/savepoints" "{\"target-directory\":\"file:///proc/flink-smoke-savepoints\",\"cancel-job\":false,\"triggerId\":\"$TID\"}"
FAIL_JSON="$(poll_savepoint "$A" "$TID")"
jq -c '.operation["failure-cause"]["serialized-throwable"] |= "<elided>" | .operation["failure-cause"]["stack-trace"] |= (split("\n")[0])' <<<"$FAIL_JSON"
check "failed savepoint: COMPLETED with failure-cause" \
  test "$(jq -r '(.status.id == "COMPLETED") and (.operation["failure-cause"] != null) and (.operation.location == null)' <<<"$FAIL_JSON")" = true
check "smoke-a still RUNNING after the failed savepoint" is_running "$A"

say "bin/flink against the sandbox (FLINK_CONF_DIR=$FLINK_CONF_DIR)"
FLINK="$FLINK_HOME/bin/flink"
LIST="$("$FLINK" list -r)"
printf '%s\n' "$LIST"
check "flink list -r shows smoke-a" grep -q " : $A : smoke-a (RUNNING)" <<<"$LIST"
OUT="$("$FLINK" savepoint "$A" "$FLINK_SAVEPOINTS")"
printf '%s\n' "$OUT"
check "flink savepoint prints the path" grep -q '^Savepoint completed. Path: file:' <<<"$OUT"
OUT="$("$FLINK" stop --savepointPath "$FLINK_SAVEPOINTS" "$A")"
printf '%s\n' "$OUT"
SP_CLI="$(sed -n 's/^Savepoint completed. Path: //p' <<<"$OUT")"
check "flink stop prints the savepoint path" test -n "$SP_CLI"
OUT="$("$FLINK" run -d -s "$SP_CLI" "$FLINK_JOB_JAR" --name smoke-a-cli)"
printf '%s\n' "$OUT"
A2="$(sed -n 's/^Job has been submitted with JobID \([0-9a-f]\{32\}\)$/\1/p' <<<"$OUT")"
check "flink run -d prints the job id" test -n "$A2"
check "smoke-a-cli RUNNING" wait_ready "$A2"
check "smoke-a-cli restored from the CLI savepoint" \
  test "$(api GET "/jobs/$A2/checkpoints" | jq -r .latest.restored.external_path)" = "$SP_CLI"
OUT="$("$FLINK" cancel "$A2")"
printf '%s\n' "$OUT"

say "cancel the rest and stop"
for j in "$B2" "$C2"; do api PATCH "/jobs/$j?mode=cancel" >/dev/null; done
api GET /jobs/overview | jq -c '[.jobs[] | {jid, name, state}]'
