#include "bench/fanout_report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace meridian::bench {
namespace {

// Column order of the results file; the first line of a new file names them.
constexpr const char* kColumns[] = {"streams",
                                    "connections",
                                    "writes",
                                    "target",
                                    "p50_ms",
                                    "p99_ms",
                                    "max_ms",
                                    "samples",
                                    "missed",
                                    "ready",
                                    "failed",
                                    "all_streams_median_ms",
                                    "write_call_median_ms",
                                    "kb_per_idle_stream",
                                    "idle_rss_mb",
                                    "cpu_us_per_update",
                                    "cpu_ms_per_write",
                                    "client_cpu_us_per_update",
                                    "load_average",
                                    "error"};

double Median(std::vector<double> values) {
  if (values.empty()) return -1;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

std::string Cell(double value, const char* format) {
  return value < 0 ? "-" : absl::StrFormat(format, value);
}

std::string Ratio(double numerator, double denominator) {
  if (numerator <= 0 || denominator <= 0) return "-";
  return absl::StrFormat("%.2f", numerator / denominator);
}

// One parsed results line: the figures PrintSummary shows.
struct Row {
  int streams = 0;
  int connections = 0;
  int writes = 0;
  std::string target;
  double p50 = -1, p99 = -1, max = -1, all_streams = -1, write_call = -1;
  double kb = -1, rss_mb = -1, cpu_us = -1, cpu_ms_write = -1, client_cpu_us = -1, load = -1;
  int64_t missed = 0;
  int ready = 0, failed = 0;
  std::string error;
};

std::optional<Row> ParseRow(const std::string& line) {
  std::vector<std::string> f = absl::StrSplit(line, '\t');
  if (f.size() < std::size(kColumns) || f[0] == kColumns[0]) return std::nullopt;
  Row row;
  int64_t samples = 0;
  bool ok = absl::SimpleAtoi(f[0], &row.streams) && absl::SimpleAtoi(f[1], &row.connections) &&
            absl::SimpleAtoi(f[2], &row.writes) && absl::SimpleAtod(f[4], &row.p50) &&
            absl::SimpleAtod(f[5], &row.p99) && absl::SimpleAtod(f[6], &row.max) &&
            absl::SimpleAtoi(f[7], &samples) && absl::SimpleAtoi(f[8], &row.missed) &&
            absl::SimpleAtoi(f[9], &row.ready) && absl::SimpleAtoi(f[10], &row.failed) &&
            absl::SimpleAtod(f[11], &row.all_streams) && absl::SimpleAtod(f[12], &row.write_call) &&
            absl::SimpleAtod(f[13], &row.kb) && absl::SimpleAtod(f[14], &row.rss_mb) &&
            absl::SimpleAtod(f[15], &row.cpu_us) && absl::SimpleAtod(f[16], &row.cpu_ms_write) &&
            absl::SimpleAtod(f[17], &row.client_cpu_us) && absl::SimpleAtod(f[18], &row.load);
  if (!ok) return std::nullopt;
  row.target = f[3];
  row.error = f[19];
  if (samples == 0) row.p50 = row.p99 = row.max = -1;
  return row;
}

}  // namespace

LatencySummary Summarize(std::vector<int64_t> latencies_ns) {
  LatencySummary summary;
  summary.samples = static_cast<int64_t>(latencies_ns.size());
  if (latencies_ns.empty()) return summary;
  std::sort(latencies_ns.begin(), latencies_ns.end());
  auto rank = [&](double fraction) {
    size_t index = static_cast<size_t>(fraction * latencies_ns.size() + 0.999999);
    return latencies_ns[std::clamp<size_t>(index, 1, latencies_ns.size()) - 1] / 1e6;
  };
  summary.p50_ms = rank(0.50);
  summary.p99_ms = rank(0.99);
  summary.max_ms = latencies_ns.back() / 1e6;
  return summary;
}

void PrintTargetLine(const TargetResult& r) {
  std::fprintf(stderr,
               "  %s N=%d: p50 %.1f ms, p99 %.1f ms, max %.1f ms, all-streams median %.1f ms, "
               "write call median %.1f ms, %s KB/idle stream, %s us CPU/update (client %s), "
               "%lld missed, %d failed%s%s\n",
               r.target.c_str(), r.streams, r.latency.p50_ms, r.latency.p99_ms, r.latency.max_ms,
               r.all_streams_median_ms, Median(r.write_call_ms),
               Cell(r.kb_per_idle_stream, "%.1f").c_str(),
               Cell(r.cpu_us_per_update, "%.1f").c_str(),
               Cell(r.client_cpu_us_per_update, "%.1f").c_str(), static_cast<long long>(r.missed),
               r.failed_streams, r.error.empty() ? "" : ", error: ", r.error.c_str());
  if (!r.first_stream_error.empty()) {
    std::fprintf(stderr, "  first stream error: %s\n", r.first_stream_error.c_str());
  }
}

void AppendResults(const std::string& path, const std::vector<TargetResult>& results) {
  const bool fresh = !std::ifstream(path).good();
  std::ofstream out(path, std::ios::app);
  if (fresh) out << absl::StrJoin(kColumns, "\t") << "\n";
  for (const TargetResult& r : results) {
    std::string error = r.error.empty() ? r.first_stream_error : r.error;
    std::replace(error.begin(), error.end(), '\t', ' ');
    std::replace(error.begin(), error.end(), '\n', ' ');
    out << absl::StrJoin({absl::StrCat(r.streams),
                          absl::StrCat(r.connections),
                          absl::StrCat(r.writes),
                          r.target,
                          absl::StrFormat("%.3f", r.latency.p50_ms),
                          absl::StrFormat("%.3f", r.latency.p99_ms),
                          absl::StrFormat("%.3f", r.latency.max_ms),
                          absl::StrCat(r.latency.samples),
                          absl::StrCat(r.missed),
                          absl::StrCat(r.ready_streams),
                          absl::StrCat(r.failed_streams),
                          absl::StrFormat("%.3f", r.all_streams_median_ms),
                          absl::StrFormat("%.3f", Median(r.write_call_ms)),
                          absl::StrFormat("%.3f", r.kb_per_idle_stream),
                          absl::StrFormat("%.3f", r.idle_rss_mb),
                          absl::StrFormat("%.3f", r.cpu_us_per_update),
                          absl::StrFormat("%.3f", r.cpu_ms_per_write),
                          absl::StrFormat("%.3f", r.client_cpu_us_per_update),
                          absl::StrFormat("%.2f", r.load_average),
                          error.empty() ? "-" : error},
                         "\t")
        << "\n";
  }
}

bool PrintSummary(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  // streams -> target -> row (the last one wins if a target was measured twice).
  std::map<int, std::map<std::string, Row>> by_streams;
  std::string line;
  while (std::getline(in, line)) {
    if (auto row = ParseRow(line)) by_streams[row->streams][row->target] = *row;
  }
  std::printf(
      "| N | system | p50 ms | p99 ms | max ms | all streams ms | write call ms | KB/idle stream "
      "| CPU us/update | CPU ms/write | client CPU us/update | missed | load |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [streams, targets] : by_streams) {
    for (const char* name : {"meridian", "etcd", "bare"}) {
      auto it = targets.find(name);
      if (it == targets.end()) continue;
      const Row& r = it->second;
      std::printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %lld | %s |\n", streams,
                  name, Cell(r.p50, "%.1f").c_str(), Cell(r.p99, "%.1f").c_str(),
                  Cell(r.max, "%.1f").c_str(), Cell(r.all_streams, "%.1f").c_str(),
                  Cell(r.write_call, "%.1f").c_str(), Cell(r.kb, "%.1f").c_str(),
                  Cell(r.cpu_us, "%.1f").c_str(), Cell(r.cpu_ms_write, "%.1f").c_str(),
                  Cell(r.client_cpu_us, "%.1f").c_str(), static_cast<long long>(r.missed),
                  Cell(r.load, "%.2f").c_str());
    }
  }
  std::printf(
      "\n| N | Meridian p99 / etcd p99 | Meridian p99 / bare p99 | KB/idle stream M / etcd / "
      "bare | CPU us/update M / etcd / bare |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const auto& [streams, targets] : by_streams) {
    auto get = [&](const char* name) {
      auto it = targets.find(name);
      return it == targets.end() ? Row{} : it->second;
    };
    const Row m = get("meridian"), e = get("etcd"), b = get("bare");
    std::printf("| %d | %s | %s | %s / %s / %s | %s / %s / %s |\n", streams,
                Ratio(m.p99, e.p99).c_str(), Ratio(m.p99, b.p99).c_str(),
                Cell(m.kb, "%.1f").c_str(), Cell(e.kb, "%.1f").c_str(), Cell(b.kb, "%.1f").c_str(),
                Cell(m.cpu_us, "%.1f").c_str(), Cell(e.cpu_us, "%.1f").c_str(),
                Cell(b.cpu_us, "%.1f").c_str());
  }
  for (const auto& [streams, targets] : by_streams) {
    for (const auto& [name, r] : targets) {
      if (r.error != "-") std::printf("%s N=%d: %s\n", name.c_str(), streams, r.error.c_str());
    }
  }
  return true;
}

}  // namespace meridian::bench
