#!/usr/bin/env bash
# Builds a Redis image from this machine's redis-server without any registry:
# FROM scratch + the binary + every library ldd lists (and the dynamic loader).
# Idempotent: does nothing when the tag already exists. Prints the tag on stdout.
#
# The image is labelled dev.streamfold.redis.version=<the binary's version>:
# redistest reads it (a cluster node before Redis 7.0 needs other ports) and
# refuses to mix an image with a REDIS_SERVER_BIN of another version.
#
#   .ci/redis-image.sh [TAG]        default TAG: streamfold/redis:7.0.15
#   REDIS_SERVER=/path/to/redis-server .ci/redis-image.sh TAG
#   REDIS_SERVER_BIN=/path/to/bin-dir .ci/redis-image.sh TAG   (as redistest reads it)
set -euo pipefail

tag=${1:-${REDIS_IMAGE_TAG:-streamfold/redis:7.0.15}}
bin=${REDIS_SERVER:-${REDIS_SERVER_BIN:-$(command -v redis-server || true)}}
[ -d "$bin" ] && bin=$bin/redis-server

log() { printf 'redis-image: %s\n' "$*" >&2; }

if ! command -v docker >/dev/null 2>&1; then
  log "docker not found"; exit 1
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  log "image $tag already exists"
else
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    log "redis-server not found (apt-get install -y redis-server)"; exit 1
  fi
  # The version before resolving links: Debian's redis-server is a link to
  # redis-check-rdb, which answers --version by the name it was called with.
  version=$("$bin" --version | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p')
  [ -n "$version" ] || { log "no version in: $("$bin" --version)"; exit 1; }
  bin=$(readlink -f "$bin")
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT

  mkdir -p "$ctx/usr/bin"
  cp -L "$bin" "$ctx/usr/bin/redis-server"
  # ldd lines: "libx.so => /path (0x..)", "/lib64/ld-linux-x86-64.so.2 (0x..)", "linux-vdso.so.1 (0x..)".
  # Copy each absolute path, dereferenced, to the same path in the context (the loader's search paths).
  libs=$(ldd "$bin" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u)
  [ -n "$libs" ] || { log "ldd listed no libraries for $bin"; exit 1; }
  for lib in $libs; do
    mkdir -p "$ctx$(dirname "$lib")"
    cp -L "$lib" "$ctx$lib"
  done

  cat > "$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY . /
WORKDIR /data
LABEL dev.streamfold.redis.version="$version"
ENTRYPOINT ["/usr/bin/redis-server"]
DOCKERFILE
  printf 'Dockerfile\n' > "$ctx/.dockerignore"

  log "building $tag from $bin, version $version ($(echo "$libs" | wc -l) libraries)"
  docker build --quiet -t "$tag" "$ctx" >&2
fi

# Smoke test: the image must start and answer PING on the host network. A
# random port may be taken by a server of a test running beside us (the
# server then exits at once): try three ports, each for up to 10 s.
smoke() {
  local port=$1 name="redis-image-check-$$-$1"
  docker run -d --rm --name "$name" --network host "$tag" \
    --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null || return 1
  for _ in $(seq 1 100); do
    if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = "PONG" ]; then
      docker stop -t 1 "$name" >/dev/null 2>&1 || true
      return 0
    fi
    docker inspect "$name" >/dev/null 2>&1 || { log "port $port: the server exited (port taken?)"; return 1; }
    sleep 0.1
  done
  docker logs "$name" >&2 || true
  docker stop -t 1 "$name" >/dev/null 2>&1 || true
  return 1
}
ok=""
for try in 1 2 3; do
  if smoke "${REDIS_IMAGE_TEST_PORT:-$((40000 + RANDOM % 10000))}"; then ok=1; break; fi
done
if [ -z "$ok" ]; then
  log "image $tag did not answer PING (three ports tried)"
  exit 1
fi
log "image $tag answers PING"
printf '%s\n' "$tag"
