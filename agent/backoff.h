#pragma once

#include <cstdint>
#include <random>

#include "absl/time/time.h"

namespace meridian::agent {

// Jittered exponential backoff between reconnect attempts: the n-th consecutive failure waits
// a random time in [ceiling/2, ceiling], ceiling = min(max, initial * 2^(n-1)), so a fleet of
// agents that lost the same control plane does not come back in lockstep.
// Thread-compatible.
class JitteredBackoff {
 public:
  JitteredBackoff(absl::Duration initial, absl::Duration max,
                  uint64_t seed = std::random_device{}());

  absl::Duration NextDelay();
  // After a healthy stream: the next failure starts again from `initial`.
  void Reset() { failures_ = 0; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  int failures_ = 0;
  std::mt19937_64 random_;
};

}  // namespace meridian::agent
