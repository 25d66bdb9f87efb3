#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace meridian::bench {

struct LatencySummary {
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  int64_t samples = 0;
};

// Nearest-rank p50/p99 and the maximum of latencies in nanoseconds.
LatencySummary Summarize(std::vector<int64_t> latencies_ns);

// What the fan-out benchmark measured on one system at one N. Negative = not measured.
struct TargetResult {
  std::string target;  // meridian, etcd, bare
  int position = 0;    // measured first (1), second, ... in its run
  int streams = 0;
  int connections = 0;
  int writes = 0;
  double load_average = -1;           // 1-minute, when this system's measurement started
  int ready_streams = 0;              // received their initial state
  int failed_streams = 0;             // ended on their own (error)
  int64_t missed = 0;                 // (write, stream) pairs never received
  LatencySummary latency;             // over every (write, ready stream) pair
  double all_streams_median_ms = -1;  // median over writes of "until the last stream had it"
  std::vector<double> write_call_ms;  // each write call's own latency
  double kb_per_idle_stream = -1;     // (RSS with N idle streams - RSS before) / N
  double idle_rss_mb = -1;
  double cpu_us_per_update = -1;         // server utime+stime over the write phase / (W x N)
  double cpu_ms_per_write = -1;          // the same per write (all N streams)
  double client_cpu_us_per_update = -1;  // the load generator's own CPU, the same way
  std::string error;
  std::string first_stream_error;
};

// One line per system to stderr while the run goes on.
void PrintTargetLine(const TargetResult& result);
// Appends results as tab-separated lines (one per system), for PrintSummary.
void AppendResults(const std::string& path, const std::vector<TargetResult>& results);
// Prints the comparison tables (per N: each system, the ratios) of a results file.
bool PrintSummary(const std::string& path);

}  // namespace meridian::bench
