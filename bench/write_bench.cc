// meridian_write_bench: the same write workloads against Meridian (gRPC ConfigService) and
// etcd (gRPC KV) in one run, printed side by side. It prints figures; it never passes or fails
// on them. bench/run_write_bench.sh starts the servers; docs/performance.md records results.
#include <sys/utsname.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/closed_loop.h"
#include "bench/write_clients.h"

namespace meridian::bench {
namespace {

struct Flags {
  std::string meridian = "127.0.0.1:18000";
  std::string etcd = "127.0.0.1:2379";
  std::string database_url;  // only to report the Postgres durability settings
  int duration_seconds = 5;
  int warmup_seconds = 1;
  int batch_size = 10000;
  int batch_runs = 3;
  std::vector<int> clients = {1, 16};
};

// One side of a comparison: a figure or the error that prevented it.
struct Figure {
  std::optional<double> value;
  std::string error;
};

struct Row {
  std::string workload;
  Figure meridian;
  Figure etcd;
  bool higher_is_better;
};

std::string MachineLine() {
  utsname names{};
  uname(&names);
  std::string load = "?";
  if (std::FILE* file = std::fopen("/proc/loadavg", "r")) {
    double one_minute = 0;
    if (std::fscanf(file, "%lf", &one_minute) == 1) load = absl::StrFormat("%.2f", one_minute);
    std::fclose(file);
  }
  // Other work on the machine skews every figure; the load average says how much there was.
  return absl::StrCat(std::thread::hardware_concurrency(), " cores (nproc), ", names.sysname, " ",
                      names.release, " ", names.machine, ", load average ", load);
}

std::string PostgresLine(const std::string& database_url) {
  if (database_url.empty()) return "unknown (pass --database-url to report it)";
  try {
    pqxx::connection connection(database_url);
    pqxx::nontransaction txn(connection);
    auto setting = [&](const char* name) {
      return absl::StrCat(name, "=", txn.exec1(absl::StrCat("SHOW ", name))[0].c_str());
    };
    return absl::StrCat(setting("synchronous_commit"), " ", setting("fsync"), " ",
                        setting("wal_sync_method"), " ", setting("server_version"));
  } catch (const std::exception& e) {
    return absl::StrCat("unknown (", e.what(), ")");
  }
}

// Returns {writes/s, p50 ms, p99 ms} figures for one store, or the reason there are none.
std::vector<Figure> MeasureClosedLoop(const char* store, const ConnectFn& connect,
                                      const ClosedLoopOptions& options) {
  std::fprintf(stderr, "  %s: %d client(s), %lds warm-up + %lds ...\n", store, options.clients,
               static_cast<long>(absl::ToInt64Seconds(options.warmup)),
               static_cast<long>(absl::ToInt64Seconds(options.duration)));
  auto result = RunClosedLoop(connect, options);
  if (!result.ok()) return std::vector<Figure>(3, Figure{std::nullopt, result.status().ToString()});
  if (result->errors > 0) {
    std::fprintf(stderr, "  %s: %ld failed writes, first: %s\n", store,
                 static_cast<long>(result->errors), result->first_error.c_str());
  }
  if (result->writes == 0) return std::vector<Figure>(3, Figure{std::nullopt, result->first_error});
  std::fprintf(stderr, "  %s: %ld writes in %.2fs\n", store, static_cast<long>(result->writes),
               absl::ToDoubleSeconds(result->elapsed));
  // Failed writes are not counted; say so next to the figure rather than hide them.
  std::string failures;
  if (result->errors > 0) {
    failures = absl::StrCat(result->errors, " writes failed, first: ", result->first_error);
  }
  return {Figure{result->WritesPerSecond(), failures},
          Figure{absl::ToDoubleMilliseconds(result->Latency(0.50)), ""},
          Figure{absl::ToDoubleMilliseconds(result->Latency(0.99)), ""}};
}

// Times `runs` batches of `size` new resources as one atomic write each; the median in ms.
Figure MeasureBatch(const char* store, const ConnectFn& connect, const std::string& name_prefix,
                    int size, int runs) {
  auto client = connect();
  if (!client.ok()) return {std::nullopt, client.status().ToString()};
  std::vector<double> millis;
  for (int run = 0; run < runs; ++run) {
    std::vector<v1::Resource> batch;
    batch.reserve(size);
    for (int i = 0; i < size; ++i) {
      batch.push_back(BenchResource(absl::StrCat(name_prefix, "-", run, "-", i)));
    }
    const absl::Time started = absl::Now();
    absl::Status status = (*client)->PutBatch(batch);
    const absl::Duration took = absl::Now() - started;
    if (!status.ok()) return {std::nullopt, status.ToString()};
    millis.push_back(absl::ToDoubleMilliseconds(took));
  }
  std::fprintf(stderr, "  %s: batch of %d took %s ms\n", store, size,
               absl::StrJoin(millis, ", ", [](std::string* out, double ms) {
                 absl::StrAppend(out, absl::StrFormat("%.1f", ms));
               }).c_str());
  std::sort(millis.begin(), millis.end());
  return {millis[millis.size() / 2], ""};
}

std::string Cell(const Figure& figure, const char* format) {
  return figure.value ? absl::StrFormat(format, *figure.value) : "error";
}

void PrintTable(const std::vector<Row>& rows) {
  std::printf("| %-40s | %10s | %10s | %6s |\n", "workload", "meridian", "etcd", "ratio");
  std::printf("|%s|%s|%s|%s|\n", std::string(42, '-').c_str(), std::string(12, '-').c_str(),
              std::string(12, '-').c_str(), std::string(8, '-').c_str());
  for (const Row& row : rows) {
    const char* format = row.higher_is_better ? "%.0f" : "%.2f";
    std::string ratio = "-";
    if (row.meridian.value && row.etcd.value && *row.meridian.value > 0 && *row.etcd.value > 0) {
      ratio = absl::StrFormat("%.2f", row.higher_is_better ? *row.meridian.value / *row.etcd.value
                                                           : *row.etcd.value / *row.meridian.value);
    }
    std::printf("| %-40s | %10s | %10s | %6s |\n", row.workload.c_str(),
                Cell(row.meridian, format).c_str(), Cell(row.etcd, format).c_str(), ratio.c_str());
  }
  for (const Row& row : rows) {
    if (!row.meridian.error.empty()) {
      std::printf("meridian error (%s): %s\n", row.workload.c_str(), row.meridian.error.c_str());
    }
    if (!row.etcd.error.empty()) {
      std::printf("etcd error (%s): %s\n", row.workload.c_str(), row.etcd.error.c_str());
    }
  }
}

int Run(const Flags& flags) {
  const ConnectFn meridian = [&] { return ConnectMeridian(flags.meridian); };
  const ConnectFn etcd = [&] { return ConnectEtcd(flags.etcd); };
  // Names unique per run, so every write creates a key even against a reused database.
  const std::string run_id = absl::StrCat("bench-", absl::ToUnixSeconds(absl::Now()));

  std::printf("Meridian write benchmark, %s\n",
              absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::Now(), absl::UTCTimeZone()).c_str());
  std::printf("machine:  %s\n", MachineLine().c_str());
  std::printf("postgres: %s\n", PostgresLine(flags.database_url).c_str());
  std::printf("targets:  meridian %s, etcd %s\n", flags.meridian.c_str(), flags.etcd.c_str());
  std::printf(
      "payload:  meridian.v1.Resource (Service) of %zu bytes serialized; etcd gets the "
      "same bytes at /bench/<name>\n",
      BenchResource(absl::StrCat(run_id, "-0-0")).ByteSizeLong());
  std::printf(
      "each client is a thread with its own channel, blocking unary calls; %ds warm-up, "
      "%ds measured\n",
      flags.warmup_seconds, flags.duration_seconds);
  std::fflush(stdout);

  std::vector<Row> rows;
  for (int clients : flags.clients) {
    std::fprintf(stderr, "single writes, %d client(s)\n", clients);
    ClosedLoopOptions options;
    options.clients = clients;
    options.warmup = absl::Seconds(flags.warmup_seconds);
    options.duration = absl::Seconds(flags.duration_seconds);
    options.name_prefix = absl::StrCat(run_id, "-c", clients);
    const auto m = MeasureClosedLoop("meridian", meridian, options);
    const auto e = MeasureClosedLoop("etcd", etcd, options);
    const std::string suffix = absl::StrCat(clients, clients == 1 ? " client" : " clients");
    rows.push_back({absl::StrCat("writes/s, ", suffix), m[0], e[0], true});
    rows.push_back({absl::StrCat("p50 write latency ms, ", suffix), m[1], e[1], false});
    rows.push_back({absl::StrCat("p99 write latency ms, ", suffix), m[2], e[2], false});
  }
  if (flags.batch_size > 0 && flags.batch_runs > 0) {
    std::fprintf(stderr, "batch of %d, %d run(s)\n", flags.batch_size, flags.batch_runs);
    const std::string prefix = absl::StrCat(run_id, "-batch");
    Figure m = MeasureBatch("meridian", meridian, prefix, flags.batch_size, flags.batch_runs);
    Figure e = MeasureBatch("etcd", etcd, prefix, flags.batch_size, flags.batch_runs);
    rows.push_back(
        {absl::StrFormat("%d-resource batch ms (median of %d)", flags.batch_size, flags.batch_runs),
         m, e, false});
  }

  std::printf(
      "\nratio > 1 means Meridian is better: meridian/etcd for writes/s, etcd/meridian "
      "for latency and batch time\n\n");
  PrintTable(rows);
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Flags flags;
  CLI::App app{"Write benchmark: Meridian vs etcd, same workload, same run"};
  app.add_option("--meridian", flags.meridian, "Meridian gRPC address")->capture_default_str();
  app.add_option("--etcd", flags.etcd, "etcd client (gRPC) address")->capture_default_str();
  app.add_option("--database-url", flags.database_url,
                 "Meridian's PostgreSQL, only to print its durability settings");
  app.add_option("--duration-seconds", flags.duration_seconds, "measured time per workload")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup-seconds", flags.warmup_seconds, "unmeasured time before each workload")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--batch-size", flags.batch_size, "resources in the batch write (0 = skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--batch-runs", flags.batch_runs, "batches per store; the median is reported")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--clients", flags.clients, "concurrent clients per single-write workload")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return meridian::bench::Run(flags);
}
