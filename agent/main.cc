// meridian-agent: flags (or a config file) in, the proxy driver and the Agent up, SIGINT/SIGTERM
// stop them.
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "agent/agent.h"
#include "agent/driver/haproxy/haproxy_driver.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  meridian::agent::AgentOptions options;
  char hostname[256] = {};
  gethostname(hostname, sizeof(hostname) - 1);
  options.xds.node_id = hostname;
  options.work_dir = "/var/lib/meridian-agent";
  std::string proxy = "haproxy";
  meridian::agent::haproxy::HaproxyDriver::Options haproxy;
  haproxy.haproxy_bin = "/usr/sbin/haproxy";
  haproxy.bind_address = "0.0.0.0";

  CLI::App app{"Meridian node agent: applies the control plane's config to the local proxy"};
  app.set_config("--config", "", "read flags from this file (TOML or INI)");
  app.add_option("--control-plane", options.xds.control_planes, "host:port (repeat to fail over)")
      ->required();
  app.add_option("--node-id", options.xds.node_id)->capture_default_str();
  app.add_option("--environment", options.xds.environment)->required();
  app.add_option("--zone", options.xds.zone);
  app.add_option("--proxy", proxy)->check(CLI::IsMember({"haproxy"}))->capture_default_str();
  app.add_option("--haproxy-bin", haproxy.haproxy_bin)->capture_default_str();
  app.add_option("--bind-address", haproxy.bind_address, "where proxy listeners bind")
      ->capture_default_str();
  app.add_option("--work-dir", options.work_dir, "snapshot, rendered config, certificates")
      ->capture_default_str();
  app.add_option("--admin-address", options.admin_address, "/healthz, /readyz, /status")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  haproxy.work_dir = options.work_dir + "/haproxy";

  // Block the signals before any thread starts so only the waiter below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  meridian::agent::haproxy::HaproxyDriver driver(haproxy);
  meridian::agent::Agent agent(options, driver);
  if (absl::Status status = agent.Start(); !status.ok()) {
    spdlog::error("meridian-agent failed to start: {}", status.ToString());
    return 1;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received signal {}, stopping", signal);
  agent.Stop();
  return 0;
}
