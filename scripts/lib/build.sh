# shellcheck shell=bash
# Configures and builds Meridian with CMake + Ninja into <repo>/build (RelWithDebInfo).
# Sourced by scripts/run and scripts/test.

# meridian_build REPO_ROOT
meridian_build() {
  local root="$1"
  local build_dir="${root}/build"
  cmake -S "${root}" -B "${build_dir}" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON || return 1
  cmake --build "${build_dir}" --parallel "$(nproc)" || return 1
}
