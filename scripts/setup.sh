#!/usr/bin/env bash
# Installs and starts what the kit needs, skipping whatever is already there:
#   Debian packages: Docker Engine, the CNCF registry, a static busybox (sample image),
#                    Chromium (browser tests);
#   Docker Engine:   started if no daemon answers;
#   Python:          a virtual environment in .venv with labkit and its dev tools, at the
#                    versions in constraints.txt (scripts/lock.sh writes it).
# Without root, when Docker already answers, the packages are optional: the sandbox then
# runs its registry as a registry:2 container (see docs/desktop.md).
# Sourced by scripts/lab.sh and scripts/test.sh; safe to run again.
set -euo pipefail

KIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LABKIT_VENV:-$KIT_ROOT/.venv}"
say() { printf '\033[1m[labkit setup]\033[0m %s\n' "$*"; }

need_packages=()
command -v dockerd >/dev/null 2>&1 || need_packages+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need_packages+=(docker-registry)
# The sample image is FROM scratch: its busybox must be the static build.
# (ldd fails on a static binary: with pipefail its status, not grep's, would decide.)
{ ldd /bin/busybox 2>&1 || true; } | grep -q "not a dynamic executable" ||
  need_packages+=(busybox-static)
if [ "${LABKIT_BROWSER_TESTS:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
  # Screenshots show the notebooks' ✅/❌ only with an emoji font.
  [ -d /usr/share/fonts/truetype/noto ] || need_packages+=(fonts-noto-color-emoji)
fi
if [ "${LABKIT_CLASSROOM_TESTS:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
  # `labkit classroom` (root only): the hub's proxy, and each learner's rootless Docker.
  command -v configurable-http-proxy >/dev/null 2>&1 || need_packages+=(node-configurable-http-proxy)
  command -v rootlesskit >/dev/null 2>&1 || need_packages+=(rootlesskit)
  command -v newuidmap >/dev/null 2>&1 || need_packages+=(uidmap)
  command -v slirp4netns >/dev/null 2>&1 || need_packages+=(slirp4netns)
fi
container_path=0
if [ ${#need_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need_packages[*]} (installing them needs root)"
    if docker info >/dev/null 2>&1; then
      # No root, no apt, but Docker answers (the docker group, or Docker Desktop): the
      # sandbox runs its registry as a registry:2 container and Task 2 pulls or builds the
      # sample image in Docker, so nothing here needs the packages.
      say "Docker is running: using the container path instead (registry:2 container);"
      say "  for the faster host registry: sudo apt-get install -y ${need_packages[*]}"
      container_path=1
      command -v chromium >/dev/null 2>&1 || export LABKIT_BROWSER_TESTS=0
    else
      say "and Docker is not reachable: start it, or join the docker group"
      say "  (sudo usermod -aG docker $USER, then log in again), or install as root:"
      say "  sudo apt-get install -y ${need_packages[*]}"
      exit 1
    fi
  else
    say "installing ${need_packages[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_packages[@]}" >/dev/null
  fi
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    say "Docker Engine is not running; start it (sudo dockerd &) and run this again"
    exit 1
  fi
  say "starting Docker Engine (dockerd, log in /var/log/labkit-dockerd.log)"
  nohup dockerd >/var/log/labkit-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not start; see /var/log/labkit-dockerd.log"; exit 1; }
fi

# Rootless Docker's slirp4netns opens /dev/net/tun as the learner; Debian makes it 0666,
# some container images leave it root-only.
if [ "${LABKIT_CLASSROOM_TESTS:-1}" = 1 ] && [ -c /dev/net/tun ] && [ "$(id -u)" = 0 ] \
  && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  say "making /dev/net/tun usable by ordinary users (0666, Debian's default) for rootless Docker"
  chmod 0666 /dev/net/tun
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating the Python environment in $VENV"
  python3 -m venv "$VENV"
fi
# The stamp holds what was installed from: a changed pyproject.toml or constraints.txt
# (an edit, a pull, a branch switch) installs again.
stamp="$VENV/.labkit-installed"
installed_from="$(cat "$KIT_ROOT/pyproject.toml" "$KIT_ROOT/constraints.txt" | cksum)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$installed_from" ]; then
  say "installing labkit and its dependencies at the tested versions (pip, constraints.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -c "$KIT_ROOT/constraints.txt" -e "$KIT_ROOT[dev]"
  printf '%s\n' "$installed_from" >"$stamp"
fi
export PATH="$VENV/bin:$PATH"
if [ "$container_path" = 1 ]; then
  # One screen of what is there and what is missing (a missing item is not fatal here:
  # the sandbox says the same when it starts).
  labkit doctor || true
fi
