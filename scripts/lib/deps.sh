# shellcheck shell=bash
# Installs the Debian packages Meridian needs to build, test and run. Sourced by scripts/run and
# scripts/test. A second run only asks dpkg, so it costs a fraction of a second.

MERIDIAN_DEB_PACKAGES=(
  g++ cmake ninja-build pkg-config git python3 procps iproute2 curl
  libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc libpqxx-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libabsl-dev libcpp-httplib-dev
  libcli11-dev libyaml-cpp-dev prometheus-cpp-dev
  postgresql-15 haproxy nginx etcd-server etcd-client
)

# Prints the packages from the arguments that are not installed, one per line.
meridian_missing_packages() {
  local installed
  # dpkg-query exits non-zero when it has never heard of a package; that package is then missing.
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)"
  local pkg
  for pkg in "$@"; do
    if ! grep -qxF "${pkg} installed" <<<"${installed}"; then
      printf '%s\n' "${pkg}"
    fi
  done
}

# Installs whatever is missing from MERIDIAN_DEB_PACKAGES (apt-get update only when needed).
meridian_install_deps() {
  local missing=()
  mapfile -t missing < <(meridian_missing_packages "${MERIDIAN_DEB_PACKAGES[@]}")
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "deps: installing ${missing[*]}" >&2
  local sudo=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "deps: not root and sudo is unavailable; install these first: ${missing[*]}" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
}
