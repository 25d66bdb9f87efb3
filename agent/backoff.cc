#include "agent/backoff.h"

#include <algorithm>

namespace meridian::agent {

JitteredBackoff::JitteredBackoff(absl::Duration initial, absl::Duration max, uint64_t seed)
    : initial_(initial), max_(std::max(initial, max)), random_(seed) {}

absl::Duration JitteredBackoff::NextDelay() {
  absl::Duration ceiling = initial_;
  for (int i = 0; i < failures_ && ceiling < max_; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max_);
  if (failures_ < 64) ++failures_;
  const int64_t ceiling_us = absl::ToInt64Microseconds(ceiling);
  std::uniform_int_distribution<int64_t> jitter(ceiling_us / 2, ceiling_us);
  return absl::Microseconds(jitter(random_));
}

}  // namespace meridian::agent
