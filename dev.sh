#!/usr/bin/env bash
# The two README commands, on a fresh Debian with nothing but python3, as root or a sudoer:
#   ./dev.sh up [ARGS]     PostGIS up and migrated, fixture district loaded, API served
#                          (ARGS go to `gridmap demo`, e.g. ./dev.sh up --port 8001)
#   ./dev.sh test [ARGS]   the test suite (ARGS go to pytest); its exit code is ours
# A second run redoes nothing: pip runs only when pyproject.toml changed, apt only when a
# package is missing. PostgreSQL + PostGIS are installed by `gridmap db up` / the test
# fixture (api/embedded_postgres.py), not here.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"

if [ -t 2 ]; then bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'; else bold='' red='' plain=''; fi
say() { printf '%sdev.sh:%s %s\n' "$bold" "$plain" "$*" >&2; }
die() {
  printf '%sdev.sh: %s%s\n' "$red" "$*" "$plain" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root to run: $* (run it as root, or install sudo)"
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  say "installing $* with apt-get"
  local log
  log=$(mktemp)
  if ! as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install $* failed (output above)"
  fi
  rm -f "$log"
}

is_311() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

find_python() {
  local name
  for name in python3 python3.14 python3.13 python3.12 python3.11; do
    if command -v "$name" >/dev/null && is_311 "$name"; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  if [ -x .venv/bin/python ] && is_311 .venv/bin/python &&
    .venv/bin/python -m pip --version >/dev/null 2>&1; then
    return 0
  fi
  local python version
  python=$(find_python) || die "Python 3.11 or newer is needed (apt-get install python3)"
  say "creating .venv with $python"
  rm -rf .venv
  if ! "$python" -m venv .venv >/dev/null 2>&1; then
    # Debian ships python3 without ensurepip; its venv module lives in pythonX.Y-venv.
    rm -rf .venv
    version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    if [ "$python" = "$(command -v python3)" ]; then
      apt_install python3-venv
    else
      apt_install "python${version}-venv"
    fi
    "$python" -m venv .venv || die "could not create .venv with $python"
  fi
}

ensure_installed() {
  local stamp=.venv/.gridmap-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x .venv/bin/gridmap ]; then
    return 0
  fi
  say "installing gridmap and its dependencies into .venv (pyproject.toml changed)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  echo "$want" >"$stamp"
}

# api/embedded_postgres.py installs PostgreSQL + PostGIS with `sudo -n`: ask for the password
# once here, where a terminal is, so that it can.
warm_sudo() {
  if [ -n "${GRIDMAP_DATABASE_URL:-}" ] || grep -qs '^GRIDMAP_DATABASE_URL=.' .env; then
    return 0
  fi
  if ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && ! sudo -n true 2>/dev/null; then
    say "PostgreSQL + PostGIS will be installed with apt-get; sudo may ask for your password"
    sudo -v || say "no sudo: gridmap will print the apt-get command to run as root"
  fi
}

prepare() {
  ensure_venv
  ensure_installed
  warm_sudo
}

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
up)
  prepare
  .venv/bin/gridmap db up
  exec .venv/bin/gridmap demo "$@"
  ;;
test)
  prepare
  if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium # for the tests marked `browser`
  fi
  if [ ! -x /usr/bin/ogr2ogr ]; then
    apt_install gdal-bin # ogr2ogr writes the Shapefiles and reprojected files tests read
  fi
  exec .venv/bin/python -m pytest "$@"
  ;;
*) usage ;;
esac
