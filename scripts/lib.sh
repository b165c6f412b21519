# Shared by scripts/run and scripts/test: install what is missing, start a
# private PostgreSQL cluster and a local Kafka-compatible broker (tansu).
# Everything lives under a directory given by the caller; nothing is
# installed system-wide except the pinned tansu binary, which is cached
# per user because it takes ~20 minutes to build.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
TANSU_VERSION="0.6.0"
TANSU_FEATURES="dynostore,postgres,libsql"
# tansu answers a fetch only after sleeping out the consumer's whole
# fetch.wait.max.ms, data or not; Kafka answers as soon as data arrives.
# This patch to its storage crate makes a waiting fetch wake on the next
# produce, so a lone write crosses each hop in about a millisecond while an
# idle consumer still costs one storage read per wait.
TANSU_PATCH="$ROOT/scripts/tansu/fetch-answers-on-produce.patch"
TANSU_CRATE_SHA256="4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d"
TANSU_STORAGE_CRATE_SHA256="720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d"
TANSU_ROOT="${SCIMFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/scimflow}/tansu-$TANSU_VERSION-$(sha256sum "$TANSU_PATCH" | cut -c1-12)"
# SCIMFLOW_TANSU_BIN runs another build (the stock one, to compare).
TANSU_BIN="${SCIMFLOW_TANSU_BIN:-$TANSU_ROOT/bin/tansu}"

log() { printf '\033[1m[scimflow]\033[0m %s\n' "$*" >&2; }
die() { printf '[scimflow] error: %s\n' "$*" >&2; exit 1; }

# fetch_crate NAME VERSION SHA256 DIR: a crate's source from crates.io,
# checked against its pinned checksum, unpacked into DIR.
fetch_crate() {
  local file="$4/$1-$2.crate"
  curl -fsSL --retry 3 "https://static.crates.io/crates/$1/$1-$2.crate" -o "$file" || die "downloading $1 $2 failed"
  echo "$3  $file" | sha256sum -c --quiet - || die "$1 $2: checksum mismatch"
  tar xzf "$file" -C "$4"
}

# tansu, pinned and patched (above), with the sqlite (libsql) storage
# engine that keeps topics and offsets across restarts. Built once per
# machine and patch, then reused. Its own Cargo.lock pins every dependency.
ensure_tansu() {
  if [ -x "$TANSU_BIN" ] && "$TANSU_BIN" --version 2>/dev/null | grep -q "tansu $TANSU_VERSION"; then
    return
  fi
  log "building tansu $TANSU_VERSION (features $TANSU_FEATURES, patched); this takes about 20 minutes, once per machine"
  local build="$TANSU_ROOT/build"
  rm -rf "$build" && mkdir -p "$build"
  fetch_crate tansu "$TANSU_VERSION" "$TANSU_CRATE_SHA256" "$build"
  fetch_crate tansu-storage "$TANSU_VERSION" "$TANSU_STORAGE_CRATE_SHA256" "$build"
  patch -s -p1 -d "$build/tansu-storage-$TANSU_VERSION" <"$TANSU_PATCH" || die "patching tansu-storage failed"
  printf '\n[patch.crates-io]\ntansu-storage = { path = "../tansu-storage-%s" }\n' "$TANSU_VERSION" \
    >>"$build/tansu-$TANSU_VERSION/Cargo.toml"
  cargo build --release --quiet --bin tansu --features "$TANSU_FEATURES" \
    --manifest-path "$build/tansu-$TANSU_VERSION/Cargo.toml" --target-dir "$build/target" >"$TANSU_ROOT/build.log" 2>&1 \
    || { tail -30 "$TANSU_ROOT/build.log" >&2; die "building tansu failed (log: $TANSU_ROOT/build.log)"; }
  mkdir -p "$TANSU_ROOT/bin"
  cp "$build/target/release/tansu" "$TANSU_BIN"
  rm -rf "$build"
  "$TANSU_BIN" --version >/dev/null || die "tansu did not build"
}

# ensure_venv DIR BIN PINS WHAT PIP_ARGS...: a virtualenv in DIR whose
# bin/BIN exists, installed with PIP_ARGS and installed again from scratch
# whenever PINS (what it was installed from) changes.
ensure_venv() {
  local dir="$1" bin="$2" pins="$3" what="$4"
  shift 4
  if [ -x "$dir/bin/$bin" ] && [ "$(cat "$dir/.pins" 2>/dev/null)" = "$pins" ]; then
    return
  fi
  log "installing $what"
  rm -rf "$dir"
  python3 -m venv "$dir" || die "python3 -m venv failed"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" || die "installing $what failed"
  printf '%s\n' "$pins" >"$dir/.pins"
}

# scim2-tester (through scim2-cli), pinned, in a virtualenv cached per user.
SCIM2_PINS="scim2-cli==0.6.0 scim2-tester==0.5.2 scim2-client==0.13.2 scim2-models==0.12.3"
SCIM2_VENV="${SCIMFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/scimflow}/scim2-venv"
ensure_scim2_tester() {
  # shellcheck disable=SC2086
  ensure_venv "$SCIM2_VENV" scim2 "$SCIM2_PINS" "$SCIM2_PINS" $SCIM2_PINS
}

# The admin API's checkers (the OpenAPI document's validator, and
# schemathesis, which tests the live API against it), pinned, in a
# virtualenv cached per user.
ADMIN_TOOLS_PINS="openapi-spec-validator==0.9.0 schemathesis==4.32.5"
ADMIN_TOOLS_VENV="${SCIMFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/scimflow}/admin-api-venv"
ensure_admin_api_tools() {
  # shellcheck disable=SC2086
  ensure_venv "$ADMIN_TOOLS_VENV" schemathesis "$ADMIN_TOOLS_PINS" "the admin API's checkers ($ADMIN_TOOLS_PINS)" \
    $ADMIN_TOOLS_PINS
}

# The deployment files' schema validators (scripts/check-deploy), pinned in
# deploy/validators.txt, in a virtualenv cached per user.
DEPLOY_VENV="${SCIMFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/scimflow}/deploy-venv"
KUBERNETES_VERSION="1.30.0"
ensure_deploy_validators() {
  ensure_venv "$DEPLOY_VENV" kubernetes-validate "$(cat "$ROOT/deploy/validators.txt")" \
    "the deployment files' validators (deploy/validators.txt)" -r "$ROOT/deploy/validators.txt"
}

# cargo-deny, pinned, built once per machine into the tools cache (deny.toml
# says what it checks and why advisories are not checked here).
CARGO_DENY_VERSION="0.20.2"
CARGO_DENY_ROOT="${SCIMFLOW_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/scimflow}/cargo-deny-$CARGO_DENY_VERSION"
CARGO_DENY_BIN="$CARGO_DENY_ROOT/bin/cargo-deny"
ensure_cargo_deny() {
  if [ -x "$CARGO_DENY_BIN" ] && "$CARGO_DENY_BIN" --version 2>/dev/null | grep -q "cargo-deny $CARGO_DENY_VERSION"; then
    return
  fi
  log "building cargo-deny $CARGO_DENY_VERSION; this takes a few minutes, once per machine"
  mkdir -p "$CARGO_DENY_ROOT"
  cargo install "cargo-deny@$CARGO_DENY_VERSION" --locked \
    --root "$CARGO_DENY_ROOT" --target-dir "$CARGO_DENY_ROOT/build" >"$CARGO_DENY_ROOT/build.log" 2>&1 \
    || { tail -30 "$CARGO_DENY_ROOT/build.log" >&2; die "building cargo-deny failed (log: $CARGO_DENY_ROOT/build.log)"; }
  rm -rf "$CARGO_DENY_ROOT/build"
  "$CARGO_DENY_BIN" --version >/dev/null || die "cargo-deny did not build"
}

# Headless Chromium and its WebDriver server, for the support console's
# browser tests, from Debian. Not pinned: Debian's security archive keeps
# only the newest build of chromium, so an exact version would stop
# installing at its next security update. The versions in use are printed.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
      else
        die "the browser tests need Debian's chromium and chromium-driver: run 'apt-get install chromium chromium-driver' as root"
      fi
    fi
    log "installing chromium and chromium-driver (Debian)"
    local install="$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver"
    # A stale package list names a build the archive no longer has.
    $install >/dev/null || { $sudo apt-get update -qq && $install >/dev/null; } \
      || die "installing chromium and chromium-driver failed"
  fi
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "chromium or chromedriver is still missing after installing"
  log "browser: $(dpkg-query -W -f='chromium ${Version}, chromium-driver ' chromium 2>/dev/null)$(dpkg-query -W -f='${Version}' chromium-driver 2>/dev/null)"
}

ensure_postgres_binaries() {
  [ -x "$PG_BIN/initdb" ] && return
  log "installing PostgreSQL 15 server binaries"
  apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null || die "PostgreSQL 15 is not installed and could not be installed"
}

# PostgreSQL refuses to run as root: run its tools as an unprivileged user.
pg_as() {
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || { id scimflow-pg >/dev/null 2>&1 || useradd -r -M scimflow-pg; user=scimflow-pg; }
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

pg_owner_fix() {
  if [ "$(id -u)" = 0 ]; then
    local user=postgres
    id "$user" >/dev/null 2>&1 || user=scimflow-pg
    chown -R "$user" "$1"
  fi
}

# start_postgres DIR PORT [durable|fast]
start_postgres() {
  local dir="$1" port="$2" mode="${3:-durable}"
  ensure_postgres_binaries
  mkdir -p "$dir"
  pg_owner_fix "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $dir/data"
    pg_as "$PG_BIN/initdb" -D "$dir/data" -U scimflow --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
  if [ "$mode" = fast ]; then
    # Throwaway test clusters: durability is the broker's and the tests'
    # concern, not this disk's.
    opts="$opts -c fsync=off -c full_page_writes=off"
  fi
  if ! pg_as "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  log "PostgreSQL on 127.0.0.1:$port"
}

stop_postgres() {
  local dir="$1"
  [ -f "$dir/data/PG_VERSION" ] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql_admin PORT SQL
psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U scimflow -d postgres -c "$2"
}

ensure_database() {
  local port="$1" name="$2"
  if ! psql -X -tA -h 127.0.0.1 -p "$port" -U scimflow -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    psql_admin "$port" "CREATE DATABASE \"$name\""
  fi
}

# start_broker DIR PORT [ARGS...]: tansu with sqlite storage under DIR, so
# topics and committed offsets survive a restart; ARGS go to tansu (e.g.
# --authentication). Sets BROKER_PID.
#
# The broker runs in its own session so that Ctrl-C reaches the processor
# first: it must leave its consumer group while the broker is still up.
# tansu 0.6 persists group membership, and a member that vanished together
# with the broker is still the group's leader after a quick restart, which
# leaves the new processor with no partitions (see docs/local-broker.md).
#
# tansu binds without SO_REUSEADDR, so a broker stopped moments ago leaves
# its port unusable while its connections sit in TIME_WAIT (up to a
# minute): then this waits and tries again instead of failing.
start_broker() {
  local dir="$1" port="$2" give_up=$((SECONDS + 90)) logged retrying=""
  shift 2
  ensure_tansu
  mkdir -p "$dir"
  while :; do
    logged=0
    [ -f "$dir/tansu.log" ] && logged=$(wc -c <"$dir/tansu.log")
    (cd "$dir" && exec setsid "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite://tansu.db" "$@" >>"$dir/tansu.log" 2>&1) &
    BROKER_PID=$!
    local deadline=$((SECONDS + 60)) held=""
    while [ $SECONDS -lt $deadline ]; do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break 2
      # tansu logs the failed bind and may stay up without listening.
      if tail -c +$((logged + 1)) "$dir/tansu.log" | grep -q "Address already in use"; then
        held=1
        break
      fi
      sleep 0.2
    done
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    if [ -n "$held" ] && [ $SECONDS -lt $give_up ]; then
      [ -n "$retrying" ] || log "port $port is still held by a broker stopped moments ago (TIME_WAIT); waiting for it"
      retrying=1
      sleep 3
      continue
    fi
    tail -20 "$dir/tansu.log" >&2
    die "tansu did not start"
  done
  python3 "$ROOT/scripts/tansu-indexes.py" "$dir/tansu.db" || die "could not index tansu's storage"
  log "tansu broker on 127.0.0.1:$port (pid $BROKER_PID)"
}

# wait_for_http URL SECONDS
wait_for_http() {
  local url="$1" deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}
