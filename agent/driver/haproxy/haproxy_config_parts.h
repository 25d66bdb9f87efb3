#pragma once

// Internal to the HAProxy renderer: the pieces haproxy_config.cc (global, defaults, frontends)
// and haproxy_backends.cc (backends and their server slots) share.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/driver/haproxy/haproxy_config.h"

namespace meridian::agent::haproxy::internal {

// Accumulates the config text and, alongside, its structure (see RenderedConfig::structure).
class ConfigWriter {
 public:
  // A line that is the same in the text and the structure.
  void Line(absl::string_view line);
  // A line whose structural form differs (a server slot).
  void Line(absl::string_view text_line, absl::string_view structure_line);
  std::string& text() { return text_; }
  std::string& structure() { return structure_; }

 private:
  std::string text_;
  std::string structure_;
};

// A rule's retry policy as HAProxy needs it: `retries` and `retry-on` are backend settings, so
// rules with different policies towards one service get one backend each.
struct RetryProfile {
  uint32_t attempts = 0;
  std::vector<std::string> retry_on;  // Meridian condition words, sorted, unique
};

// A backend to render: one per (service, retry profile) that some rule routes to.
struct BackendPlan {
  std::string name;
  std::string service;
  RetryProfile retry;
  // Per-rule server timeouts (`http-request set-timeout server`), keyed by rule id.
  std::vector<std::pair<std::string, uint32_t>> rule_timeouts;
};

RetryProfile RetryProfileOf(const v1::RouteRule& rule);
std::string BackendName(const std::string& service, const RetryProfile& retry);
// "<route>/<index>": the value of txn.rule once the rule matched.
std::string RuleId(const std::string& route, int index);
// The ACL term that holds when the request matched rule `rule_id`.
std::string RuleMatched(const std::string& rule_id);
// `name` with every byte outside [A-Za-z0-9._-] replaced by '_' (names reach HAProxy unquoted).
std::string SafeName(absl::string_view name);
// QuoteWord for a log-format argument (set-header values, replacement paths): '%' doubled.
std::string QuoteLogFormat(const std::string& value);

void RenderBackend(const BackendPlan& plan, const ProxySnapshot& snapshot,
                   const SlotLayout& previous_layout, RenderedConfig& result, ConfigWriter& out);

}  // namespace meridian::agent::haproxy::internal
