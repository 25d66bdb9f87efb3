// REST handlers for convergence tracking: nodes, per-revision status, wait.
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controlplane/api/rest_json.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/api/rest_support.h"
#include "controlplane/common/status_macros.h"
#include "google/protobuf/util/time_util.h"

namespace meridian::api {
namespace {

using OutputJson = nlohmann::ordered_json;

constexpr absl::Duration kDefaultWait = absl::Seconds(30);
constexpr absl::Duration kMaxWait = absl::Minutes(10);

// RFC 3339 in UTC ending in "Z", as every other timestamp of the API (rest_json.cc).
std::string Time(const google::protobuf::Timestamp& time) {
  return google::protobuf::util::TimeUtil::ToString(time);
}

OutputJson NodeJson(const v1::NodeStatus& node) {
  OutputJson out = {{"id", node.id()},
                    {"environment", node.environment()},
                    {"cluster", node.cluster()},
                    {"zone", node.zone()},
                    {"user_agent", node.user_agent()},
                    {"replica", node.replica()},
                    {"connected", node.connected()},
                    {"last_sent_revision", node.last_sent_revision()},
                    {"applied_revision", node.applied_revision()},
                    {"nacked_revision", node.nacked_revision()},
                    {"answered_revision", node.answered_revision()}};
  if (node.nacked_revision() > 0) {
    out["nack_type_url"] = node.nack_type_url();
    out["nack_error"] = node.nack_error();
  }
  if (node.has_first_seen()) out["first_seen"] = Time(node.first_seen());
  if (node.has_connected_since()) out["connected_since"] = Time(node.connected_since());
  if (node.has_last_seen()) out["last_seen"] = Time(node.last_seen());
  return out;
}

OutputJson NodeList(const google::protobuf::RepeatedPtrField<v1::NodeStatus>& nodes) {
  OutputJson list = OutputJson::array();
  for (const auto& node : nodes) list.push_back(NodeJson(node));
  return list;
}

OutputJson RevisionStatusJson(const v1::RevisionStatus& status) {
  OutputJson environments = OutputJson::array();
  for (const auto& environment : status.environments()) environments.push_back(environment);
  return {{"revision", status.revision()},
          {"environments", environments},
          {"converged", status.converged()},
          {"nodes_in_scope", status.nodes_in_scope()},
          {"applied_count", status.applied_count()},
          {"nacked_count", status.nacked_size()},
          {"pending_count", status.pending_size()},
          {"disconnected_count", status.disconnected_size()},
          {"applied", NodeList(status.applied())},
          {"nacked", NodeList(status.nacked())},
          {"pending", NodeList(status.pending())},
          {"disconnected", NodeList(status.disconnected())}};
}

absl::StatusOr<v1::NodeState> StateFrom(const httplib::Request& req) {
  const std::string state = rest::QueryString(req, "status");
  if (state.empty() || state == "all") return v1::NODE_STATE_UNSPECIFIED;
  if (state == "connected") return v1::CONNECTED;
  if (state == "disconnected") return v1::DISCONNECTED;
  return absl::InvalidArgumentError(
      absl::StrCat("status: \"", state, "\" must be connected, disconnected or all"));
}

// "30s", "500ms", "2m" or a plain number of seconds.
absl::StatusOr<absl::Duration> TimeoutFrom(const httplib::Request& req) {
  const std::string text = rest::QueryString(req, "timeout");
  if (text.empty()) return kDefaultWait;
  absl::Duration timeout;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    timeout = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &timeout)) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout: \"", text, "\" is not a duration (e.g. 30s, 500ms)"));
  }
  if (timeout < absl::ZeroDuration() || timeout > kMaxWait) {
    return absl::InvalidArgumentError("timeout: must be between 0 and 10m");
  }
  return timeout;
}

absl::StatusOr<int64_t> RevisionFrom(const httplib::Request& req) {
  int64_t revision = 0;
  if (!absl::SimpleAtoi(req.matches[1].str(), &revision) || revision <= 0) {
    return absl::InvalidArgumentError("revision: must be a positive integer");
  }
  return revision;
}

}  // namespace

void RestServer::RegisterConvergenceRoutes() {
  if (convergence_ == nullptr) return;
  http_.Get("/api/v1/nodes", [this](const httplib::Request& req, httplib::Response& res) {
    auto state = StateFrom(req);
    if (!state.ok()) return rest::SendError(res, state.status());
    auto nodes = convergence_->ListNodes(rest::QueryString(req, "environment"), *state);
    if (!nodes.ok()) return rest::SendError(res, nodes.status());
    rest::SendJson(res, 200, {{"nodes", NodeList(nodes->nodes())}});
  });
  http_.Get(R"(/api/v1/nodes/([^/]+))", [this](const httplib::Request& req,
                                               httplib::Response& res) {
    auto node = convergence_->GetNode(req.matches[1].str());
    if (!node.ok()) return rest::SendError(res, node.status());
    rest::SendJson(res, 200, NodeJson(*node));
  });
  http_.Get(R"(/api/v1/revisions/(\d+)/status)", [this](const httplib::Request& req,
                                                        httplib::Response& res) {
    auto revision = RevisionFrom(req);
    if (!revision.ok()) return rest::SendError(res, revision.status());
    auto status = convergence_->RevisionStatus(*revision);
    if (!status.ok()) return rest::SendError(res, status.status());
    rest::SendJson(res, 200, RevisionStatusJson(*status));
  });
  http_.Post(R"(/api/v1/revisions/(\d+)/wait)", [this](const httplib::Request& req,
                                                       httplib::Response& res) {
    auto revision = RevisionFrom(req);
    if (!revision.ok()) return rest::SendError(res, revision.status());
    auto timeout = TimeoutFrom(req);
    if (!timeout.ok()) return rest::SendError(res, timeout.status());
    auto status = convergence_->WaitForRevision(*revision, *timeout);
    if (!status.ok()) return rest::SendError(res, status.status());
    rest::SendJson(res, 200, RevisionStatusJson(*status));
  });
}

}  // namespace meridian::api
