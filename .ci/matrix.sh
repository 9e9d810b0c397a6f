#!/usr/bin/env bash
# The server version matrix: runs the cross-version test set against every
# Redis/Valkey release in REDIS_SRC (built once from source, cached outside the
# clone) and against this machine's redis-server, each time with every server
# of the tests — shared standalone, shared 3-master cluster, dedicated servers —
# taken from that version; then prints the table (version × topology × suite).
#
#   .ci/matrix.sh                      every version in REDIS_SRC, then Debian's
#   .ci/matrix.sh redis-6.2.16 local   the named ones ("local": redis-server on PATH)
#
# Environment:
#   REDIS_SRC      release sources and build.sh (default: ../shared/redis-src beside the clone)
#   MATRIX_CACHE   where builds are cached (default: $HOME/.cache/redis-builds)
#   MATRIX_OUT     go test -json output and the table (default: $TMPDIR/streamfold-matrix)
#   MATRIX_PKGS    the packages run (default below)
#   MATRIX_README  set to 1 to write the table into README.md (between its matrix markers)
#   MATRIX_LOCAL   0: leave out the local redis-server (run when no release is found)
#
# Without REDIS_SRC it runs only the local server and says so. Exit status:
# non-zero when a test failed on any version.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

src=${REDIS_SRC:-$root/../shared/redis-src}
cache=${MATRIX_CACHE:-$HOME/.cache/redis-builds}
out=${MATRIX_OUT:-${TMPDIR:-/tmp}/streamfold-matrix}
# The cross-version set: the store's conformance suite and its other tests,
# snapshots, projections, read models, retention, the examples, and the
# harness itself. The full suite (integration, lifecycle, CLI) runs on the
# local server in `make test`.
pkgs=${MATRIX_PKGS:-./redistest/ ./eventstore/... ./snapshot/ ./projection/ ./readmodel/ ./retention/... ./examples/...}
# And the crash tests of integration_test (SIGKILL of dedicated servers under
# appends, both fsync policies); MATRIX_CRASH= leaves them out.
crash=${MATRIX_CRASH-^TestCrash}

log() { printf 'matrix: %s\n' "$*" >&2; }

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  if [ -x "$src/build.sh" ]; then
    for t in "$src"/*.tar.gz; do versions+=("$(basename "$t" .tar.gz)"); done
  else
    log "no release sources at $src (REDIS_SRC): running the local redis-server only"
  fi
  # MATRIX_LOCAL=0 leaves the local server out when releases are there (CI:
  # make test has just run the whole suite on it, with -race).
  if [ "${MATRIX_LOCAL:-1}" != 0 ] || [ ${#versions[@]} -eq 0 ]; then versions+=(local); fi
fi

docker_ok=""
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then docker_ok=1; fi
[ -n "$docker_ok" ] || log "Docker not reachable: every server is a local process"

mkdir -p "$out"
rm -f "$out"/*.json
export TESTCONTAINERS_RYUK_DISABLED=true
failed=()
for v in "${versions[@]}"; do
  if [ "$v" = local ]; then
    bin=$(command -v redis-server) || { log "redis-server not on PATH"; exit 1; }
    name="local-$("$bin" --version | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p')"
  else
    [ -x "$src/build.sh" ] || { log "$v: no build.sh in $src"; exit 1; }
    start=$SECONDS
    bin=$("$src/build.sh" "$v" "$cache")/redis-server
    log "$v: build ready in $((SECONDS - start))s: $bin"
    name=$v
  fi
  image=""
  if [ -n "$docker_ok" ]; then
    image=$(REDIS_SERVER="$bin" .ci/redis-image.sh "streamfold/redis:matrix-$name")
  fi
  log "$name: go test $pkgs (REDIS_SERVER_BIN=$bin REDIS_IMAGE=${image:-none})"
  start=$SECONDS
  rc=0
  # No REDIS_URL/REDIS_CLUSTER_URL: they would put another server under the tests.
  env -u REDIS_URL -u REDIS_CLUSTER_URL REDIS_SERVER_BIN="$bin" REDIS_IMAGE="$image" \
    REDISTEST_SOURCE="$([ -n "$image" ] && echo auto || echo local)" \
    go test -count=1 -json -timeout 15m $pkgs >"$out/$name.json" 2>"$out/$name.stderr" || rc=$?
  if [ -n "$crash" ]; then
    env -u REDIS_URL -u REDIS_CLUSTER_URL REDIS_SERVER_BIN="$bin" REDIS_IMAGE="$image" \
      REDISTEST_SOURCE="$([ -n "$image" ] && echo auto || echo local)" \
      go test -count=1 -json -timeout 10m -run "$crash" ./integration_test/ >>"$out/$name.json" 2>>"$out/$name.stderr" || rc=$?
  fi
  log "$name: $([ $rc -eq 0 ] && echo pass || echo FAIL) in $((SECONDS - start))s"
  [ $rc -eq 0 ] || failed+=("$name")
  if [ -n "$image" ]; then
    # Containers a crashed test binary left behind (the image is the matrix's own).
    leftover=$(docker ps -aq --filter "ancestor=$image")
    [ -z "$leftover" ] || docker rm -f $leftover >/dev/null || true
  fi
done

readme=()
[ "${MATRIX_README:-}" = 1 ] && readme=(-readme README.md)
go run ./.ci/matrixtable "${readme[@]}" "$out"/*.json | tee "$out/table.md"
if [ ${#failed[@]} -gt 0 ]; then
  log "failed on: ${failed[*]} (go test -json output in $out)"
  exit 1
fi
log "passed on: ${versions[*]}"
