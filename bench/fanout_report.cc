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
                                    "error",
                                    "position"};
// Files written before the position column have one column less.
constexpr size_t kColumnsWithoutPosition = std::size(kColumns) - 1;

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
  int position = 0;  // 0: not recorded
};

std::optional<Row> ParseRow(const std::string& line) {
  std::vector<std::string> f = absl::StrSplit(line, '\t');
  if (f.size() < kColumnsWithoutPosition || f[0] == kColumns[0]) return std::nullopt;
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
  if (f.size() > kColumnsWithoutPosition && !absl::SimpleAtoi(f[20], &row.position)) {
    return std::nullopt;
  }
  if (samples == 0) row.p50 = row.p99 = row.max = -1;
  return row;
}

// Rounds of one system at one N, in the order they ran.
using Rounds = std::vector<Row>;

double MedianOf(const Rounds& rounds, double Row::*field) {
  std::vector<double> values;
  for (const Row& row : rounds) {
    if (row.*field >= 0) values.push_back(row.*field);
  }
  return Median(values);
}

// The figures of a system at one N: each the median over its rounds (none: not measured).
Row MedianRow(const Rounds& rounds) {
  if (rounds.empty()) return Row{};
  Row row = rounds.front();
  for (double Row::*field :
       {&Row::p50, &Row::p99, &Row::max, &Row::all_streams, &Row::write_call, &Row::kb,
        &Row::rss_mb, &Row::cpu_us, &Row::cpu_ms_write, &Row::client_cpu_us, &Row::load}) {
    row.*field = MedianOf(rounds, field);
  }
  row.missed = 0;
  for (const Row& round : rounds) row.missed += round.missed;
  return row;
}

// Meridian's p99 over another system's, paired round by round (both measured minutes apart
// on the same machine): the median ratio, and the lowest and highest when there are several.
std::string PairedRatio(const Rounds& meridian, const Rounds& other) {
  std::vector<double> ratios;
  for (size_t i = 0; i < meridian.size() && i < other.size(); ++i) {
    if (meridian[i].p99 > 0 && other[i].p99 > 0) ratios.push_back(meridian[i].p99 / other[i].p99);
  }
  if (ratios.empty()) return "-";
  if (ratios.size() == 1) return absl::StrFormat("%.2f", ratios[0]);
  const auto [low, high] = std::minmax_element(ratios.begin(), ratios.end());
  return absl::StrFormat("%.2f (%.2f-%.2f)", Median(ratios), *low, *high);
}

// With the order rotated (ROTATE=1), each system's median p99 at each place it was measured
// in its round: whether being measured first, second, ... favours a system.
void PrintByPosition(const std::map<int, std::map<std::string, Rounds>>& by_streams) {
  int positions = 0;
  bool rotated = false;
  for (const auto& [streams, targets] : by_streams) {
    for (const auto& [name, rounds] : targets) {
      for (const Row& row : rounds) {
        positions = std::max(positions, row.position);
        rotated |= row.position != rounds.front().position;
      }
    }
  }
  if (!rotated) return;
  static constexpr const char* kOrdinals[] = {"1st", "2nd", "3rd"};
  std::string header = "| N | system | measured";
  std::string rule = "|---|---|";
  for (int position = 1; position <= positions; ++position) {
    header += position <= 3 ? absl::StrCat(" ", kOrdinals[position - 1], " |")
                            : absl::StrCat(" ", position, "th |");
    rule += "---|";
  }
  std::printf("\nMedian p99 ms (rounds) by the place each system was measured in its round:\n\n");
  std::printf("%s\n%s\n", header.c_str(), rule.c_str());
  for (const auto& [streams, targets] : by_streams) {
    for (const auto& [name, rounds] : targets) {
      std::printf("| %d | %s |", streams, name.c_str());
      for (int position = 1; position <= positions; ++position) {
        std::vector<double> p99s;
        for (const Row& row : rounds) {
          if (row.position == position && row.p99 > 0) p99s.push_back(row.p99);
        }
        std::printf(" %s (%zu) |", Cell(Median(p99s), "%.1f").c_str(), p99s.size());
      }
      std::printf("\n");
    }
  }
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
                          error.empty() ? "-" : error,
                          absl::StrCat(r.position)},
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
  // streams -> target -> its rounds, in file order.
  std::map<int, std::map<std::string, Rounds>> by_streams;
  size_t most_rounds = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (auto row = ParseRow(line)) {
      Rounds& rounds = by_streams[row->streams][row->target];
      rounds.push_back(*row);
      most_rounds = std::max(most_rounds, rounds.size());
    }
  }
  static const Rounds kNotMeasured;
  auto rounds_of = [](const std::map<std::string, Rounds>& targets,
                      const char* name) -> const Rounds& {
    auto it = targets.find(name);
    return it == targets.end() ? kNotMeasured : it->second;
  };
  if (most_rounds > 1) {
    std::printf("Each figure is the median of %zu rounds; missed is their sum.\n\n", most_rounds);
  }
  std::printf(
      "| N | system | p50 ms | p99 ms | max ms | all streams ms | write call ms | KB/idle stream "
      "| CPU us/update | CPU ms/write | client CPU us/update | missed | load |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& [streams, targets] : by_streams) {
    for (const char* name : {"meridian", "etcd", "bare", "bare-b"}) {
      const Rounds& rounds = rounds_of(targets, name);
      if (rounds.empty()) continue;
      const Row r = MedianRow(rounds);
      std::printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %lld | %s |\n", streams,
                  name, Cell(r.p50, "%.1f").c_str(), Cell(r.p99, "%.1f").c_str(),
                  Cell(r.max, "%.1f").c_str(), Cell(r.all_streams, "%.1f").c_str(),
                  Cell(r.write_call, "%.1f").c_str(), Cell(r.kb, "%.1f").c_str(),
                  Cell(r.cpu_us, "%.1f").c_str(), Cell(r.cpu_ms_write, "%.1f").c_str(),
                  Cell(r.client_cpu_us, "%.1f").c_str(), static_cast<long long>(r.missed),
                  Cell(r.load, "%.2f").c_str());
    }
  }
  // With a second bare server measured too, its p99 over the first's shows how far two runs
  // of the same system move apart: the resolution of the other ratios.
  bool control = false;
  for (const auto& [streams, targets] : by_streams) control |= targets.count("bare-b") > 0;
  std::printf(
      "\n| N | Meridian p99 / etcd p99 | Meridian p99 / bare p99 | KB/idle stream M / etcd / "
      "bare | CPU us/update M / etcd / bare |%s\n",
      control ? " bare-b p99 / bare p99 (A/A) |" : "");
  std::printf("|---|---|---|---|---|%s\n", control ? "---|" : "");
  for (const auto& [streams, targets] : by_streams) {
    const Rounds& m_rounds = rounds_of(targets, "meridian");
    const Rounds& e_rounds = rounds_of(targets, "etcd");
    const Rounds& b_rounds = rounds_of(targets, "bare");
    const Row m = MedianRow(m_rounds), e = MedianRow(e_rounds), b = MedianRow(b_rounds);
    std::printf("| %d | %s | %s | %s / %s / %s | %s / %s / %s |", streams,
                PairedRatio(m_rounds, e_rounds).c_str(), PairedRatio(m_rounds, b_rounds).c_str(),
                Cell(m.kb, "%.1f").c_str(), Cell(e.kb, "%.1f").c_str(), Cell(b.kb, "%.1f").c_str(),
                Cell(m.cpu_us, "%.1f").c_str(), Cell(e.cpu_us, "%.1f").c_str(),
                Cell(b.cpu_us, "%.1f").c_str());
    if (control) {
      std::printf(" %s |", PairedRatio(rounds_of(targets, "bare-b"), b_rounds).c_str());
    }
    std::printf("\n");
  }
  if (most_rounds > 1) {
    std::printf("\n| N | round | p99 ms M / etcd / bare | M / etcd | M / bare |%s\n",
                control ? " bare-b p99 ms | bare-b / bare |" : "");
    std::printf("|---|---|---|---|---|%s\n", control ? "---|---|" : "");
    for (const auto& [streams, targets] : by_streams) {
      const Rounds& m = rounds_of(targets, "meridian");
      const Rounds& e = rounds_of(targets, "etcd");
      const Rounds& b = rounds_of(targets, "bare");
      const Rounds& b2 = rounds_of(targets, "bare-b");
      for (size_t i = 0; i < std::max({m.size(), e.size(), b.size(), b2.size()}); ++i) {
        auto p99 = [i](const Rounds& rounds) { return i < rounds.size() ? rounds[i].p99 : -1; };
        std::printf("| %d | %zu | %s / %s / %s | %s | %s |", streams, i + 1,
                    Cell(p99(m), "%.1f").c_str(), Cell(p99(e), "%.1f").c_str(),
                    Cell(p99(b), "%.1f").c_str(), Ratio(p99(m), p99(e)).c_str(),
                    Ratio(p99(m), p99(b)).c_str());
        if (control) {
          std::printf(" %s | %s |", Cell(p99(b2), "%.1f").c_str(), Ratio(p99(b2), p99(b)).c_str());
        }
        std::printf("\n");
      }
    }
  }
  PrintByPosition(by_streams);
  for (const auto& [streams, targets] : by_streams) {
    for (const auto& [name, rounds] : targets) {
      for (const Row& r : rounds) {
        if (r.error != "-") std::printf("%s N=%d: %s\n", name.c_str(), streams, r.error.c_str());
      }
    }
  }
  return true;
}

}  // namespace meridian::bench
