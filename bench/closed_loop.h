#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/write_clients.h"

namespace meridian::bench {

using ConnectFn = std::function<absl::StatusOr<std::unique_ptr<WriteClient>>()>;

struct ClosedLoopOptions {
  int clients = 1;
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(5);
  // Resource names are <name_prefix>-<client>-<sequence>, so every write creates a new key.
  std::string name_prefix;
};

// What one closed-loop run measured; warm-up writes are not counted.
struct ClosedLoopResult {
  int64_t writes = 0;  // acknowledged writes started inside the measured window
  int64_t errors = 0;
  std::string first_error;
  absl::Duration elapsed;           // window start to the last measured acknowledgement
  std::vector<int64_t> latency_ns;  // sorted, one per measured write

  double WritesPerSecond() const;
  // Nearest-rank percentile (0 < fraction <= 1); zero when nothing was measured.
  absl::Duration Latency(double fraction) const;
};

// Runs `options.clients` threads, each with its own client from `connect`, writing
// BenchResource()s back to back (each waits for its previous write: a closed loop) for the
// warm-up and then the measured duration. Fails only when a client cannot connect.
absl::StatusOr<ClosedLoopResult> RunClosedLoop(const ConnectFn& connect,
                                               const ClosedLoopOptions& options);

}  // namespace meridian::bench
