#!/usr/bin/env bash
# A local Apache Flink session cluster for the end-to-end tests of the Flink runbooks, and the
# small stateful job those tests run on it. See usage() below and scripts/flink/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
JOB_SRC_DIR="$SCRIPT_DIR/flink/job/src/main/java"
JOB_MAIN_CLASS="runbook.sandbox.StatefulCounterJob"

FLINK_VERSION="${FLINK_VERSION:-2.3.0}"
CACHE_DIR="${RUNBOOK_FLINK_CACHE:-$HOME/.cache/runbook/flink}"
PYTHON="${PYTHON:-python3}"
START_TIMEOUT="${FLINK_START_TIMEOUT:-120}"
STOP_TIMEOUT="${FLINK_STOP_TIMEOUT:-30}"

usage() {
  cat <<EOF
Usage: scripts/flink-sandbox.sh COMMAND [ARGS]

A local Apache Flink session cluster (standalone, on 127.0.0.1) for end-to-end tests.

Commands:
  fetch              Download the apache-flink and apache-flink-libraries wheels of
                     FLINK_VERSION (pip download --no-deps) into the cache and unpack the
                     Flink distribution there once. Prints FLINK_HOME.
  start DIR          Make a sandbox in DIR (its own conf/, log/, checkpoints/, savepoints/),
                     build the test job, start the cluster on free ports, wait until a
                     TaskManager offers free slots, write DIR/env and print the REST URL.
                     Does nothing but print the URL when DIR's cluster already answers.
  stop DIR           Stop DIR's cluster and make sure its java processes are gone.
                     Idempotent.
  status DIR         Print GET /overview of DIR's cluster, or say it is down (exit 1).
  build-job [OUT]    Compile and package the stateful test job (scripts/flink/job) against
                     the fetched distribution; cached by a hash of its sources. Prints the
                     jar's path; copies it to OUT when given.
  help               This text.

DIR/env (after start) can be sourced: it exports FLINK_HOME, FLINK_CONF_DIR, FLINK_URL,
FLINK_REST_PORT, FLINK_SANDBOX, FLINK_CHECKPOINTS, FLINK_SAVEPOINTS, FLINK_JOB_JAR and
FLINK_VERSION. With it sourced, "\$FLINK_HOME/bin/flink list -r" targets the sandbox.

Environment:
  FLINK_VERSION          Flink version to fetch (default 2.3.0).
  RUNBOOK_FLINK_CACHE    Cache for wheels, the unpacked distribution and built job jars
                         (default \$HOME/.cache/runbook/flink).
  RUNBOOK_FLINK_HOME     Use this unpacked Flink distribution instead of fetching one.
  FLINK_REST_PORT        REST port for start (default: a free port).
  FLINK_SANDBOX_CONF     Extra config.yaml lines ("key: value", flat keys) for start;
                         a key given here replaces the sandbox's default for it.
  FLINK_START_TIMEOUT    Seconds start waits for a TaskManager (default 120).
  FLINK_STOP_TIMEOUT     Seconds stop waits before killing leftovers (default 30).
  PYTHON                 Python with pip (default python3).
EOF
}

log() { printf 'flink-sandbox: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

need() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is needed but not installed"
  done
}

flink_home() {
  if [[ -n "${RUNBOOK_FLINK_HOME:-}" ]]; then
    printf '%s\n' "$RUNBOOK_FLINK_HOME"
  else
    printf '%s\n' "$CACHE_DIR/flink-$FLINK_VERSION"
  fi
}

# Run "$@" holding the cache lock, so that concurrent fetches or builds do not collide.
with_cache_lock() {
  mkdir -p "$CACHE_DIR"
  if command -v flock >/dev/null 2>&1; then
    (
      flock 9
      "$@"
    ) 9>"$CACHE_DIR/.lock"
  else
    "$@"
  fi
}

# ---------------------------------------------------------------------------------------------
# fetch

download_wheels() {
  local wheel_dir="$1"
  local -a specs=("apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION")
  local -a base=("$PYTHON" -m pip download --no-deps --no-cache-dir
    --disable-pip-version-check --only-binary=:all: -d "$wheel_dir")
  # apache-flink's wheel is built per Python version and platform; only its bin/ and conf/
  # are used, so when this interpreter has no matching wheel any CPython 3.11 one will do.
  if ! "${base[@]}" "${specs[@]}" >&2; then
    log "no wheel for this interpreter; trying the CPython 3.11 manylinux one"
    "${base[@]}" --python-version 3.11 --implementation cp --abi cp311 \
      --platform manylinux2014_x86_64 "${specs[@]}" >&2 ||
      die "pip download of Flink $FLINK_VERSION failed (is FLINK_VERSION on PyPI?)"
  fi
}

# The wheels carry the distribution under pyflink/: bin/ and conf/ in apache-flink, lib/, opt/
# and plugins/ in apache-flink-libraries. Extract those into a fresh FLINK_HOME.
unpack_wheels() {
  local wheel_dir="$1" dest="$2"
  "$PYTHON" - "$dest" "$wheel_dir"/apache_flink_libraries-*.whl "$wheel_dir"/apache_flink-*.whl <<'PY'
import os, sys, zipfile

dest = sys.argv[1]
keep = ("bin/", "conf/", "lib/", "opt/", "plugins/", "licenses/")
for wheel in sys.argv[2:]:
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.startswith("pyflink/"):
                continue
            rel = name[len("pyflink/"):]
            if not rel.startswith(keep) and rel not in ("README.txt", "version.py"):
                continue
            target = os.path.join(dest, rel)
            if name.endswith("/"):
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(target, mode)
PY
  # Zip extraction may lose the executable bits.
  chmod +x "$dest"/bin/* "$dest"/bin/flink
  find "$dest/plugins" -name '*.sh' -exec chmod +x {} + 2>/dev/null || true
  local f
  for f in bin/start-cluster.sh bin/stop-cluster.sh bin/flink conf/config.yaml; do
    [[ -e "$dest/$f" ]] || die "unpacked distribution has no $f"
  done
  compgen -G "$dest/lib/flink-dist-*.jar" >/dev/null || die "unpacked distribution has no lib/flink-dist-*.jar"
}

do_fetch() {
  local home wheel_dir tmp
  home="$(flink_home)"
  if [[ -f "$home/.unpacked" ]]; then
    return 0
  fi
  need "$PYTHON"
  wheel_dir="$CACHE_DIR/wheels/$FLINK_VERSION"
  mkdir -p "$wheel_dir"
  if compgen -G "$wheel_dir/apache_flink-$FLINK_VERSION-*.whl" >/dev/null &&
    compgen -G "$wheel_dir/apache_flink_libraries-$FLINK_VERSION-*.whl" >/dev/null; then
    log "using cached wheels in $wheel_dir"
  else
    log "downloading Flink $FLINK_VERSION wheels into $wheel_dir"
    download_wheels "$wheel_dir"
  fi
  tmp="$home.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "unpacking Flink $FLINK_VERSION into $home"
  unpack_wheels "$wheel_dir" "$tmp"
  rm -rf "$home"
  mv "$tmp" "$home"
  touch "$home/.unpacked"
}

cmd_fetch() {
  if [[ -n "${RUNBOOK_FLINK_HOME:-}" ]]; then
    [[ -x "$RUNBOOK_FLINK_HOME/bin/start-cluster.sh" ]] ||
      die "RUNBOOK_FLINK_HOME=$RUNBOOK_FLINK_HOME has no bin/start-cluster.sh"
  else
    with_cache_lock do_fetch
  fi
  flink_home
}

# ---------------------------------------------------------------------------------------------
# build-job

do_build_job() {
  local home="$1" hash="$2" jar="$3" classes
  [[ -f "$jar" ]] && return 0
  classes="$(mktemp -d)"
  local -a sources=()
  local src
  # A read loop, not mapfile: macOS ships bash 3.2.
  while IFS= read -r src; do sources+=("$src"); done < <(find "$JOB_SRC_DIR" -name '*.java' | LC_ALL=C sort)
  log "compiling the test job ($hash) against Flink $FLINK_VERSION"
  if ! javac -nowarn -Xlint:none --release 11 -encoding UTF-8 \
    -cp "$home/lib/*" -d "$classes" "${sources[@]}" >&2; then
    rm -rf "$classes"
    die "javac failed"
  fi
  mkdir -p "$(dirname "$jar")"
  jar --create --file "$jar.tmp.$$" --main-class "$JOB_MAIN_CLASS" -C "$classes" . >&2
  mv "$jar.tmp.$$" "$jar"
  rm -rf "$classes"
}

# SHA-256 of stdin, as hex (sha256sum on Linux, shasum on macOS).
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum | cut -d' ' -f1
  else
    shasum -a 256 | cut -d' ' -f1
  fi
}

# Prints the path of the built job jar.
build_job() {
  local home hash jar
  need javac jar
  command -v sha256sum >/dev/null 2>&1 || need shasum
  home="$(cmd_fetch)"
  [[ -d "$JOB_SRC_DIR" ]] || die "no job sources in $JOB_SRC_DIR"
  hash="$(
    cd "$JOB_SRC_DIR"
    {
      printf 'flink=%s main=%s release=11\n' "$FLINK_VERSION" "$JOB_MAIN_CLASS"
      find . -name '*.java' | LC_ALL=C sort | while IFS= read -r f; do
        printf '%s\n' "$f"
        sha256 <"$f"
      done
    } | sha256 | cut -c1-16
  )"
  jar="$CACHE_DIR/jobs/runbook-flink-job-$FLINK_VERSION-$hash.jar"
  with_cache_lock do_build_job "$home" "$hash" "$jar"
  printf '%s\n' "$jar"
}

cmd_build_job() {
  local jar
  jar="$(build_job)"
  if [[ $# -ge 1 && -n "$1" ]]; then
    mkdir -p "$(dirname "$1")"
    cp "$jar" "$1"
    jar="$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"
  fi
  printf '%s\n' "$jar"
}

# ---------------------------------------------------------------------------------------------
# start / stop / status

sandbox_dir() {
  [[ $# -ge 1 && -n "$1" ]] || die "missing DIR (see: $0 help)"
  mkdir -p "$1"
  (cd "$1" && pwd -P)
}

# Prints N distinct free TCP ports on 127.0.0.1.
free_ports() {
  "$PYTHON" - "$1" <<'PY'
import socket, sys

socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Writes DIR/conf/config.yaml: the distribution's JVM options, the sandbox defaults, and
# FLINK_SANDBOX_CONF on top.
write_config() {
  local home="$1" dir="$2" rest_port="$3" rpc_port="$4"
  local defaults
  defaults="$(
    cat <<EOF
env.log.dir: $dir/log
env.pid.dir: $dir/pid
jobmanager.rpc.address: localhost
jobmanager.rpc.port: $rpc_port
jobmanager.bind-host: localhost
jobmanager.memory.process.size: 1024m
jobmanager.execution.failover-strategy: region
taskmanager.host: localhost
taskmanager.bind-host: localhost
taskmanager.rpc.port: 0
taskmanager.data.port: 0
taskmanager.numberOfTaskSlots: 8
taskmanager.memory.process.size: 1280m
taskmanager.memory.managed.size: 64m
parallelism.default: 1
blob.server.port: 0
metrics.internal.query-service.port: 0
metrics.fetcher.update-interval: 1 s
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $rest_port
rest.async.store-duration: 20 s
web.tmpdir: $dir/tmp/web
io.tmp.dirs: $dir/tmp
state.backend.type: hashmap
execution.checkpointing.dir: file://$dir/checkpoints
execution.checkpointing.savepoint-dir: file://$dir/savepoints
execution.checkpointing.interval: 1 s
execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 3
restart-strategy.fixed-delay.delay: 1 s
EOF
  )"
  "$PYTHON" - "$home/conf/config.yaml" "$dir/conf/config.yaml" "$defaults" "${FLINK_SANDBOX_CONF:-}" <<'PY'
import sys

src, dest, defaults, extra = sys.argv[1:5]


def java_opts_all(path):
    """The value of env.java.opts.all in the distribution's config.yaml (nested or flat)."""
    stack = []  # (indent, key)
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or ":" not in stripped:
                continue
            indent = len(line) - len(line.lstrip(" "))
            key, _, value = stripped.partition(":")
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key.strip()))
            if ".".join(k for _, k in stack) == "env.java.opts.all" and value.strip():
                return value.strip()
    return ""


def pairs(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            sys.exit("FLINK_SANDBOX_CONF: not a 'key: value' line: " + line)
        out.append((key.strip(), value.strip()))
    return out


settings = {}
opts = java_opts_all(src)
if opts:
    settings["env.java.opts.all"] = opts
for key, value in pairs(defaults) + pairs(extra):
    settings[key] = value
with open(dest, "w", encoding="utf-8") as f:
    f.write("# Written by scripts/flink-sandbox.sh start; rewritten at every start.\n")
    for key, value in settings.items():
        f.write(f"{key}: {value}\n")
PY
  printf 'localhost:%s\n' "$rest_port" >"$dir/conf/masters"
  printf 'localhost\n' >"$dir/conf/workers"
}

# Pids of the java processes started for DIR's conf: from the pid files, and from the
# process table by the --configDir argument that Flink's daemons are started with.
sandbox_pids() {
  local dir="$1" f
  {
    if [[ -d "$dir/pid" ]]; then
      for f in "$dir"/pid/*.pid; do
        [[ -f "$f" ]] && cat "$f"
      done
    fi
    ps -eo pid=,args= | awk -v pat="--configDir $dir/conf " \
      'index($0 " ", pat) && $2 ~ /java$/ { print $1 }'
  } | awk 'NF' | LC_ALL=C sort -u | while IFS= read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then printf '%s\n' "$pid"; fi
  done
}

rest_url() {
  local dir="$1" port=""
  if [[ -f "$dir/conf/config.yaml" ]]; then
    port="$(awk -F': *' '$1 == "rest.port" { print $2 }' "$dir/conf/config.yaml")"
  fi
  [[ -n "$port" ]] && printf 'http://127.0.0.1:%s\n' "$port"
}

overview() {
  curl -fsS --max-time 5 "$1/overview" 2>/dev/null
}

# Succeeds when the overview JSON on stdin shows a TaskManager with a free slot.
has_free_slots() {
  "$PYTHON" -c '
import json, sys
try:
    o = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if o.get("taskmanagers", 0) >= 1 and o.get("slots-available", 0) >= 1 else 1)
'
}

show_log_tail() {
  local dir="$1" f
  for f in "$dir"/log/*.log "$dir"/log/*.out; do
    [[ -s "$f" ]] || continue
    if grep -qE 'ERROR|Exception' "$f"; then
      printf '\n----- errors in %s -----\n' "$f" >&2
      grep -E 'ERROR|Exception' "$f" | tail -n 20 >&2
    fi
    printf '\n----- tail of %s -----\n' "$f" >&2
    tail -n 30 "$f" >&2
  done
}

write_env() {
  local file="$1" tmp="$1.tmp.$$"
  shift
  : >"$tmp"
  local kv
  for kv in "$@"; do
    printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$tmp"
  done
  mv "$tmp" "$file"
}

cmd_start() {
  local dir home url jar rest_port rpc_port started json
  need curl java "$PYTHON"
  dir="$(sandbox_dir "${1:-}")"
  url="$(rest_url "$dir" || true)"
  if [[ -n "$url" && -f "$dir/env" ]] && json="$(overview "$url")" && has_free_slots <<<"$json"; then
    log "sandbox in $dir is already running"
    printf '%s\n' "$url"
    return 0
  fi
  if [[ -n "$(sandbox_pids "$dir")" ]]; then
    log "leftover processes of $dir found; stopping them first"
    cmd_stop "$dir"
  fi

  home="$(cmd_fetch)"
  jar="$(build_job)"

  mkdir -p "$dir/conf" "$dir/log" "$dir/pid" "$dir/tmp" "$dir/checkpoints" "$dir/savepoints"
  local f
  for f in "$home"/conf/*; do
    case "$(basename "$f")" in
      config.yaml | masters | workers) ;;
      *) cp "$f" "$dir/conf/" ;;
    esac
  done
  read -r rest_port rpc_port <<<"$(free_ports 2)"
  rest_port="${FLINK_REST_PORT:-$rest_port}"
  write_config "$home" "$dir" "$rest_port" "$rpc_port"
  url="http://127.0.0.1:$rest_port"
  rm -f "$dir/env"

  log "starting Flink $FLINK_VERSION in $dir (REST $url)"
  started=$SECONDS
  FLINK_CONF_DIR="$dir/conf" FLINK_LOG_DIR="$dir/log" FLINK_PID_DIR="$dir/pid" \
    "$home/bin/start-cluster.sh" >&2 || {
    show_log_tail "$dir"
    cmd_stop "$dir" || true
    die "bin/start-cluster.sh failed"
  }

  while :; do
    if json="$(overview "$url")" && has_free_slots <<<"$json"; then
      break
    fi
    if ((SECONDS - started >= START_TIMEOUT)); then
      show_log_tail "$dir"
      cmd_stop "$dir" || true
      die "no TaskManager with free slots at $url/overview after ${START_TIMEOUT}s (logs: $dir/log)"
    fi
    if [[ -z "$(sandbox_pids "$dir")" ]]; then
      show_log_tail "$dir"
      die "the cluster's processes exited (logs: $dir/log)"
    fi
    sleep 1
  done
  log "up after $((SECONDS - started))s: $json"

  write_env "$dir/env" \
    "FLINK_VERSION=$FLINK_VERSION" \
    "FLINK_HOME=$home" \
    "FLINK_CONF_DIR=$dir/conf" \
    "FLINK_URL=$url" \
    "FLINK_REST_PORT=$rest_port" \
    "FLINK_SANDBOX=$dir" \
    "FLINK_CHECKPOINTS=file://$dir/checkpoints" \
    "FLINK_SAVEPOINTS=file://$dir/savepoints" \
    "FLINK_JOB_JAR=$jar"
  printf '%s\n' "$url"
}

cmd_stop() {
  local dir home pids waited=0
  [[ $# -ge 1 && -n "$1" ]] || die "missing DIR (see: $0 help)"
  if [[ ! -d "$1/conf" ]]; then
    log "no sandbox in $1"
    return 0
  fi
  dir="$(cd "$1" && pwd -P)"
  pids="$(sandbox_pids "$dir" | tr '\n' ' ')"
  home="$(flink_home)"
  if [[ -n "${pids// /}" && -x "$home/bin/stop-cluster.sh" ]]; then
    FLINK_CONF_DIR="$dir/conf" FLINK_LOG_DIR="$dir/log" FLINK_PID_DIR="$dir/pid" \
      "$home/bin/stop-cluster.sh" >&2 || true
  fi
  while [[ -n "$(sandbox_pids "$dir")" ]] && ((waited < STOP_TIMEOUT)); do
    sleep 1
    waited=$((waited + 1))
  done
  pids="$(sandbox_pids "$dir" | tr '\n' ' ')"
  if [[ -n "${pids// /}" ]]; then
    log "killing leftover processes: $pids"
    # shellcheck disable=SC2086 # a list of pids
    kill -TERM $pids 2>/dev/null || true
    sleep 3
    pids="$(sandbox_pids "$dir" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # a list of pids
    [[ -z "${pids// /}" ]] || kill -KILL $pids 2>/dev/null || true
  fi
  rm -f "$dir"/pid/*.pid "$dir/env"
  log "stopped $dir"
}

cmd_status() {
  local dir url json
  dir="$(sandbox_dir "${1:-}")"
  url="$(rest_url "$dir" || true)"
  if [[ -n "$url" ]] && json="$(overview "$url")"; then
    printf '%s\n' "$json"
  else
    printf 'down: no Flink answers for %s%s\n' "$dir" "${url:+ at $url}"
    return 1
  fi
}

main() {
  local cmd="${1:-help}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    build-job) cmd_build_job "$@" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
