// meridian_fanout_load: opens N agent-like streams over C TCP connections to Meridian (ADS
// delta), etcd (Watch) and the bare gRPC broadcast server, applies W writes of the same size to
// each, and prints per-stream convergence (write call start → that stream received the
// revision) with the servers' memory per idle stream and CPU per pushed update. It prints
// figures; it never passes or fails on them. bench/run_fanout_bench.sh starts the servers;
// docs/performance.md records results.
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/fanout_report.h"
#include "bench/fanout_streams.h"

namespace meridian::bench {
namespace {

struct Flags {
  int streams = 1000;
  int connections = 100;
  int writes = 20;
  int client_threads = 2;
  int write_interval_ms = 500;
  int settle_seconds = 3;
  int ready_timeout_seconds = 180;
  int converge_timeout_seconds = 30;
  std::vector<std::string> targets = {"meridian", "etcd", "bare"};
  int rotate_targets = 0;  // measure the targets from this position on, wrapping around
  std::string meridian = "127.0.0.1:18000";
  std::string etcd = "127.0.0.1:2379";
  std::string bare = "127.0.0.1:18100";
  std::string bare_b;  // a second bare server: the A/A control
  int meridian_pid = 0;
  int etcd_pid = 0;
  int bare_pid = 0;
  int bare_b_pid = 0;
  std::string environment = "bench";
  std::vector<std::string> meridian_types;  // empty: meridian.v1.Endpoint
  std::string results;    // append one line per target here
  std::string summarize;  // only print the table of this results file
};

// Memory and CPU of a server process, from /proc.
struct ProcessSample {
  int64_t rss_kb = 0;
  int64_t cpu_ticks = 0;  // utime + stime
};

std::optional<ProcessSample> SampleProcess(int pid) {
  if (pid <= 0) return std::nullopt;
  ProcessSample sample;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      if (parts.size() >= 2 && !absl::SimpleAtoi(parts[1], &sample.rss_kb)) return std::nullopt;
    }
  }
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start at the state, field 3.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::vector<std::string> fields =
      absl::StrSplit(text.substr(close + 2), ' ', absl::SkipWhitespace());
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return std::nullopt;
  }
  sample.cpu_ticks = utime + stime;
  return sample;
}

// This process's own CPU time: the load generator shares the machine with the servers.
double SelfCpuMicros() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto micros = [](const timeval& t) { return t.tv_sec * 1e6 + t.tv_usec; };
  return micros(usage.ru_utime) + micros(usage.ru_stime);
}

double LoadAverage() {
  double one_minute = -1;
  if (std::FILE* file = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(file, "%lf", &one_minute) != 1) one_minute = -1;
    std::fclose(file);
  }
  return one_minute;
}

// C connections: separate channels with a private subchannel pool each, so every channel has
// its own TCP connection as separate agent processes would.
std::vector<std::shared_ptr<grpc::Channel>> Connect(const std::string& target, int count) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("meridian.fanout_bench.connection", i);
    auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "  connection %d to %s did not connect within 10 s\n", i,
                   target.c_str());
    }
    channels.push_back(std::move(channel));
  }
  return channels;
}

// Waits (bounded) until `done` holds, polling.
template <typename Predicate>
bool WaitUntil(Predicate done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

struct Write {
  int64_t started_ns;
  int64_t revision;
  int64_t acknowledged_ns;
};

// Per (write, ready stream): time from the write call's start to the first update carrying
// its revision or a newer one. Fills result's latency figures; returns the number of samples.
int64_t TallyConvergence(const std::vector<Write>& writes,
                         const std::vector<std::unique_ptr<Subscriber>>& subscribers,
                         TargetResult& result) {
  std::vector<int64_t> latencies;
  latencies.reserve(writes.size() * subscribers.size());
  std::vector<double> all_streams_ms;  // per write: until the last stream had it
  std::string first_ms;                // per write: until the first stream had it
  std::string call_ms;                 // per write: until the write call returned
  for (const Write& write : writes) {
    int64_t slowest = 0;
    int64_t fastest = INT64_MAX;
    for (const auto& subscriber : subscribers) {
      if (!subscriber->probe().ready()) continue;
      auto arrival = subscriber->probe().FirstArrivalAtOrAfter(write.revision);
      if (!arrival) {
        ++result.missed;
        continue;
      }
      latencies.push_back(*arrival - write.started_ns);
      slowest = std::max(slowest, *arrival - write.started_ns);
      fastest = std::min(fastest, *arrival - write.started_ns);
    }
    if (fastest != INT64_MAX) absl::StrAppend(&first_ms, absl::StrFormat(" %.0f", fastest / 1e6));
    all_streams_ms.push_back(slowest / 1e6);
    result.write_call_ms.push_back((write.acknowledged_ns - write.started_ns) / 1e6);
    absl::StrAppend(&call_ms, absl::StrFormat(" %.0f", result.write_call_ms.back()));
  }
  result.latency = Summarize(latencies);
  std::string per_write;
  for (double ms : all_streams_ms) absl::StrAppend(&per_write, absl::StrFormat(" %.0f", ms));
  std::fprintf(stderr, "  until the write call returned, per write (ms):%s\n", call_ms.c_str());
  std::fprintf(stderr, "  until the first stream had it, per write (ms):%s\n", first_ms.c_str());
  std::fprintf(stderr, "  until the last stream had it, per write (ms):%s\n", per_write.c_str());
  std::sort(all_streams_ms.begin(), all_streams_ms.end());
  if (!all_streams_ms.empty())
    result.all_streams_median_ms = all_streams_ms[all_streams_ms.size() / 2];
  return result.latency.samples;
}

TargetResult Measure(const Flags& flags, const std::string& name, const std::string& address,
                     int pid, FanoutTarget& target, ClientQueues& queues) {
  TargetResult result;
  result.target = name;
  result.streams = flags.streams;
  result.connections = flags.connections;
  result.writes = flags.writes;
  result.load_average = LoadAverage();
  std::fprintf(stderr, "%s: %d streams over %d connections to %s (load %.2f)\n", name.c_str(),
               flags.streams, flags.connections, address.c_str(), result.load_average);

  auto channels = Connect(address, flags.connections);
  if (absl::Status status = target.Seed(); !status.ok()) {
    result.error = status.ToString();
    return result;
  }
  absl::SleepFor(absl::Seconds(1));  // let the server settle after the seed write
  const std::optional<ProcessSample> before = SampleProcess(pid);

  std::vector<std::unique_ptr<Subscriber>> subscribers;
  subscribers.reserve(flags.streams);
  const absl::Time open_started = absl::Now();
  for (int i = 0; i < flags.streams; ++i) {
    subscribers.push_back(
        target.Subscribe(channels[i % channels.size()], queues.For(i), i, flags.writes + 4));
  }
  auto count_ready = [&] {
    return std::count_if(subscribers.begin(), subscribers.end(),
                         [](const auto& s) { return s->probe().ready(); });
  };
  WaitUntil([&] { return count_ready() == flags.streams; },
            absl::Seconds(flags.ready_timeout_seconds));
  result.ready_streams = static_cast<int>(count_ready());
  std::fprintf(stderr, "  %d/%d streams received their initial state in %.1f s\n",
               result.ready_streams, flags.streams,
               absl::ToDoubleSeconds(absl::Now() - open_started));
  absl::SleepFor(absl::Seconds(flags.settle_seconds));
  const std::optional<ProcessSample> idle = SampleProcess(pid);
  if (before && idle && result.ready_streams > 0) {
    result.kb_per_idle_stream =
        static_cast<double>(idle->rss_kb - before->rss_kb) / result.ready_streams;
    result.idle_rss_mb = idle->rss_kb / 1024.0;
  }

  // The write phase: W writes at a fixed interval, then until every live stream has the last.
  std::vector<Write> writes;
  const std::optional<ProcessSample> cpu_before = SampleProcess(pid);
  const double client_cpu_before = SelfCpuMicros();
  for (int w = 1; w <= flags.writes; ++w) {
    const int64_t started = NowNanos();
    auto revision = target.Write(w);
    if (!revision.ok()) {
      result.error = revision.status().ToString();
      break;
    }
    writes.push_back({started, *revision, NowNanos()});
    const int64_t next = started + int64_t{flags.write_interval_ms} * 1'000'000;
    if (w < flags.writes && next > NowNanos()) {
      absl::SleepFor(absl::Nanoseconds(next - NowNanos()));
    }
  }
  if (!writes.empty()) {
    const int64_t last = writes.back().revision;
    WaitUntil(
        [&] {
          return std::all_of(subscribers.begin(), subscribers.end(), [&](const auto& s) {
            return !s->probe().ready() || s->probe().error() ||
                   s->probe().newest_revision() >= last;
          });
        },
        absl::Seconds(flags.converge_timeout_seconds));
  }
  const std::optional<ProcessSample> cpu_after = SampleProcess(pid);
  const double client_cpu_us = SelfCpuMicros() - client_cpu_before;

  const int64_t samples = TallyConvergence(writes, subscribers, result);
  if (cpu_before && cpu_after && samples > 0) {
    const double cpu_us =
        (cpu_after->cpu_ticks - cpu_before->cpu_ticks) * 1e6 / sysconf(_SC_CLK_TCK);
    result.cpu_ms_per_write = cpu_us / 1000.0 / writes.size();
    result.cpu_us_per_update = cpu_us / (static_cast<double>(writes.size()) * result.ready_streams);
  }
  if (!writes.empty() && result.ready_streams > 0) {
    result.client_cpu_us_per_update =
        client_cpu_us / (static_cast<double>(writes.size()) * result.ready_streams);
  }
  for (const auto& subscriber : subscribers) {
    if (auto error = subscriber->probe().error()) {
      ++result.failed_streams;
      if (result.first_stream_error.empty()) result.first_stream_error = *error;
    }
  }

  for (auto& subscriber : subscribers) subscriber->Cancel();
  for (auto& subscriber : subscribers) {
    // A stream gRPC still holds must outlive it: leak it rather than free it under gRPC.
    if (!subscriber->WaitDone(absl::Seconds(10))) subscriber.release();
  }
  PrintTargetLine(result);
  return result;
}

int Run(const Flags& flags) {
  if (!flags.summarize.empty()) return PrintSummary(flags.summarize) ? 0 : 1;
  const std::string run_id = absl::StrCat(getpid());
  std::vector<TargetResult> results;
  ClientQueues queues(static_cast<size_t>(flags.client_threads));
  std::vector<std::string> order = flags.targets;
  if (!order.empty()) {
    std::rotate(order.begin(), order.begin() + flags.rotate_targets % order.size(), order.end());
  }
  for (const std::string& name : order) {
    std::unique_ptr<FanoutTarget> target;
    std::string address;
    int pid = 0;
    auto write_channel = [](const std::string& to) {
      return grpc::CreateChannel(to, grpc::InsecureChannelCredentials());
    };
    if (name == "meridian" || name == "meridian-sotw") {
      address = flags.meridian;
      pid = flags.meridian_pid;
      target = MeridianTarget(
          write_channel(address), flags.environment, run_id,
          name == "meridian" ? MeridianProtocol::kDelta : MeridianProtocol::kStateOfTheWorld,
          flags.meridian_types);
    } else if (name == "etcd") {
      address = flags.etcd;
      pid = flags.etcd_pid;
      target = EtcdTarget(write_channel(address));
    } else if (name == "bare" || (name == "bare-b" && !flags.bare_b.empty())) {
      address = name == "bare" ? flags.bare : flags.bare_b;
      pid = name == "bare" ? flags.bare_pid : flags.bare_b_pid;
      target = BareTarget(write_channel(address));
    } else {
      std::fprintf(stderr,
                   "unknown target %s (meridian, meridian-sotw, etcd, bare, bare-b with "
                   "--bare-b)\n",
                   name.c_str());
      return 2;
    }
    results.push_back(Measure(flags, name, address, pid, *target, queues));
    results.back().position = static_cast<int>(results.size());
  }
  if (!flags.results.empty()) AppendResults(flags.results, results);
  return 0;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  meridian::bench::Flags flags;
  CLI::App app{"Fan-out benchmark: Meridian ADS vs etcd watch vs bare gRPC broadcast"};
  app.add_option("--streams", flags.streams, "agent streams (N)")->capture_default_str();
  app.add_option("--connections", flags.connections, "TCP connections they share (C)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--client-threads", flags.client_threads,
                 "completion-queue threads driving the load generator's streams")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--writes", flags.writes, "writes measured (W)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--write-interval-ms", flags.write_interval_ms)->capture_default_str();
  app.add_option("--settle-seconds", flags.settle_seconds,
                 "wait after all streams are up before sampling idle memory")
      ->capture_default_str();
  app.add_option("--ready-timeout-seconds", flags.ready_timeout_seconds)->capture_default_str();
  app.add_option("--converge-timeout-seconds", flags.converge_timeout_seconds)
      ->capture_default_str();
  app.add_option("--targets", flags.targets,
                 "systems to measure, in order: meridian (delta agents), meridian-sotw "
                 "(state-of-the-world proxies), etcd, bare, bare-b (a second bare server, "
                 "measured like the first: the A/A control of the ratios)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rotate-targets", flags.rotate_targets,
                 "start with the target at this position of --targets and wrap around (the run "
                 "script's ROTATE=1 moves each round's order by one, so no system is always "
                 "measured first); results keep their system names")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--meridian", flags.meridian, "meridian-cp gRPC address")->capture_default_str();
  app.add_option("--etcd", flags.etcd, "etcd client address")->capture_default_str();
  app.add_option("--bare", flags.bare, "bare broadcast server address")->capture_default_str();
  app.add_option("--bare-b", flags.bare_b, "second bare broadcast server address (bare-b)");
  app.add_option("--meridian-pid", flags.meridian_pid, "meridian-cp pid, for RSS and CPU");
  app.add_option("--etcd-pid", flags.etcd_pid, "etcd pid, for RSS and CPU");
  app.add_option("--bare-pid", flags.bare_pid, "bare server pid, for RSS and CPU");
  app.add_option("--bare-b-pid", flags.bare_b_pid, "second bare server pid, for RSS and CPU");
  app.add_option("--environment", flags.environment, "Meridian environment the agents are in")
      ->capture_default_str();
  app.add_option("--meridian-types", flags.meridian_types,
                 "type URLs the delta agents subscribe to, in push order (a write has arrived "
                 "once the last one's response carries it); default meridian.v1.Endpoint")
      ->delimiter(',');
  app.add_option("--results", flags.results, "append the results to this file");
  app.add_option("--summarize", flags.summarize,
                 "print the comparison table of a results file and exit");
  CLI11_PARSE(app, argc, argv);
  // Debian's Abseil (and gRPC's mutexes, which are Abseil's) checks lock order on every lock;
  // the load generator shares the machine with the servers, so it should cost them little.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return meridian::bench::Run(flags);
}
