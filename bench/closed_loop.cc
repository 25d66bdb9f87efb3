#include "bench/closed_loop.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace meridian::bench {
namespace {

// One load thread's tally; merged after the threads join.
struct ClientTally {
  int64_t writes = 0;
  int64_t errors = 0;
  std::string first_error;
  absl::Time last_ack = absl::InfinitePast();
  std::vector<int64_t> latency_ns;
};

void DriveClient(WriteClient& client, const std::string& name_prefix, absl::Time measure_from,
                 absl::Time stop_at, ClientTally& tally) {
  tally.latency_ns.reserve(1 << 16);
  for (int64_t sequence = 0;; ++sequence) {
    // Built before the clock starts: the payload is the same work for every store.
    v1::Resource resource = BenchResource(absl::StrCat(name_prefix, "-", sequence));
    const absl::Time started = absl::Now();
    if (started >= stop_at) return;
    absl::Status status = client.Put(resource);
    const absl::Time acked = absl::Now();
    if (started < measure_from) continue;
    if (!status.ok()) {
      if (tally.errors++ == 0) tally.first_error = status.ToString();
      continue;
    }
    ++tally.writes;
    tally.last_ack = std::max(tally.last_ack, acked);
    tally.latency_ns.push_back(absl::ToInt64Nanoseconds(acked - started));
  }
}

}  // namespace

double ClosedLoopResult::WritesPerSecond() const {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds > 0 ? static_cast<double>(writes) / seconds : 0;
}

absl::Duration ClosedLoopResult::Latency(double fraction) const {
  if (latency_ns.empty()) return absl::ZeroDuration();
  const auto rank =
      static_cast<size_t>(std::ceil(fraction * static_cast<double>(latency_ns.size())));
  return absl::Nanoseconds(latency_ns[std::clamp<size_t>(rank, 1, latency_ns.size()) - 1]);
}

absl::StatusOr<ClosedLoopResult> RunClosedLoop(const ConnectFn& connect,
                                               const ClosedLoopOptions& options) {
  // Connect everyone first so connection set-up is not part of any measurement.
  std::vector<std::unique_ptr<WriteClient>> clients;
  for (int i = 0; i < options.clients; ++i) {
    auto client = connect();
    if (!client.ok()) return client.status();
    clients.push_back(*std::move(client));
  }
  std::vector<ClientTally> tallies(clients.size());
  absl::Notification go;
  absl::Time measure_from;
  absl::Time stop_at;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients.size(); ++i) {
    threads.emplace_back([&, i] {
      go.WaitForNotification();
      DriveClient(*clients[i], absl::StrCat(options.name_prefix, "-", i), measure_from, stop_at,
                  tallies[i]);
    });
  }
  measure_from = absl::Now() + options.warmup;
  stop_at = measure_from + options.duration;
  go.Notify();  // publishes measure_from and stop_at to the threads
  for (auto& thread : threads) thread.join();

  ClosedLoopResult result;
  absl::Time last_ack = measure_from;
  for (auto& tally : tallies) {
    result.writes += tally.writes;
    if (tally.errors > 0 && result.errors == 0) result.first_error = tally.first_error;
    result.errors += tally.errors;
    last_ack = std::max(last_ack, tally.last_ack);
    result.latency_ns.insert(result.latency_ns.end(), tally.latency_ns.begin(),
                             tally.latency_ns.end());
  }
  std::sort(result.latency_ns.begin(), result.latency_ns.end());
  result.elapsed = last_ack - measure_from;
  return result;
}

}  // namespace meridian::bench
