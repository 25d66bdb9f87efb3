#include "agent/xds_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "spdlog/spdlog.h"

namespace meridian::agent {
namespace {

using ::envoy::service::discovery::v3::AggregatedDiscoveryService;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;

// A stream that stayed up this long was healthy even if its environment is empty (no response).
constexpr absl::Duration kHealthyStream = absl::Seconds(10);

std::shared_ptr<grpc::Channel> DefaultChannel(const std::string& address,
                                              const XdsClientOptions& options) {
  grpc::ChannelArguments args;
  // The server's default policy tolerates pings no more often than every 5 minutes on an idle
  // connection; keepalive then also sets TCP_USER_TIMEOUT, so a vanished peer is noticed.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5 * 60 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  // The minimum reconnect backoff is also how long one connection attempt may take: a replica
  // that does not answer fails the stream (UNAVAILABLE) after connect_timeout, and the next
  // replica is tried. Our own backoff paces retries; the channel's must not add to it.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.connect_timeout)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.initial_backoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options.max_backoff)));
  // A fresh channel per stream must not inherit a shared subchannel stuck in backoff.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

XdsClient::XdsClient(XdsClientOptions options, AppliedState initial, ApplyFn apply,
                     AcceptedFn on_accepted)
    : options_(std::move(options)),
      apply_(std::move(apply)),
      on_accepted_(std::move(on_accepted)),
      state_(options_.environment, std::move(initial)) {
  status_.revision = state_.held().snapshot.revision;
}

XdsClient::~XdsClient() { Stop(); }

void XdsClient::Start() {
  running_ = true;
  thread_ = std::thread([this] {
    Run();
    running_ = false;
  });
}

void XdsClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

XdsClientStatus XdsClient::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

bool XdsClient::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void XdsClient::NoteError(std::string error) {
  absl::MutexLock lock(&mu_);
  status_.last_error = std::move(error);
  status_.last_error_time = absl::Now();
}

envoy::config::core::v3::Node XdsClient::MakeNode() const {
  envoy::config::core::v3::Node node;
  node.set_id(options_.node_id);
  node.set_cluster(options_.environment);
  auto& fields = *node.mutable_metadata()->mutable_fields();
  fields["environment"].set_string_value(options_.environment);
  if (!options_.zone.empty()) {
    fields["zone"].set_string_value(options_.zone);
    node.mutable_locality()->set_zone(options_.zone);
  }
  node.set_user_agent_name("meridian-agent");
  node.set_user_agent_version(options_.user_agent_version);
  return node;
}

void XdsClient::Run() {
  if (options_.control_planes.empty()) {
    NoteError("no control plane address configured");
    return;
  }
  JitteredBackoff backoff(options_.initial_backoff, options_.max_backoff);
  for (size_t next = 0; !stopping(); next = (next + 1) % options_.control_planes.size()) {
    const std::string& address = options_.control_planes[next];
    bool healthy = false;
    absl::Status status = RunStream(address, healthy);
    if (stopping()) break;
    if (healthy) backoff.Reset();
    const absl::Duration delay = backoff.NextDelay();
    spdlog::warn("xds stream to {} ended: {}; retrying in {} ms", address, status.ToString(),
                 absl::ToInt64Milliseconds(delay));
    NoteError(absl::StrCat("stream to ", address, ": ", status.ToString()));
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), delay);
  }
}

absl::Status XdsClient::RunStream(const std::string& address, bool& healthy) {
  std::shared_ptr<grpc::Channel> channel = options_.channel_factory
                                               ? options_.channel_factory(address)
                                               : DefaultChannel(address, options_);
  auto stub = AggregatedDiscoveryService::NewStub(channel);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    context_ = &context;
  }
  const absl::Time opened = absl::Now();
  // Not wait_for_ready: an unreachable replica fails the stream, and the next one is tried.
  // The first writes complete once the connection is up.
  std::unique_ptr<DeltaStream> stream = stub->DeltaAggregatedResources(&context);
  bool ok = true;
  for (const auto& request : state_.InitialRequests(MakeNode())) {
    if (!(ok = stream->Write(request))) break;
  }
  if (ok) {
    absl::MutexLock lock(&mu_);
    status_.control_plane = address;
    status_.connected = true;
    ++status_.streams;
    spdlog::info("xds stream open to {} (node {}, environment {})", address, options_.node_id,
                 options_.environment);
  }
  DeltaDiscoveryResponse response;
  while (ok && stream->Read(&response)) {
    healthy = true;
    ok = HandleResponse(*stream, response);
  }
  if (!ok) context.TryCancel();
  const grpc::Status status = stream->Finish();
  if (absl::Now() - opened >= kHealthyStream) healthy = true;
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  status_.connected = false;
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

bool XdsClient::HandleResponse(DeltaStream& stream, const DeltaDiscoveryResponse& response) {
  {
    absl::MutexLock lock(&mu_);
    ++status_.responses;
    status_.resources_received += response.resources_size();
    status_.removals_received += response.removed_resources_size();
  }
  if (!DeltaSubscriptionState::IsSubscribed(response.type_url())) {
    // As Envoy: a type nobody asked for is dropped unanswered.
    spdlog::warn("xds: dropping a response of unsubscribed type {}", response.type_url());
    return true;
  }
  absl::StatusOr<StagedUpdate> staged = state_.Stage(response);
  absl::Status verdict = staged.ok() ? apply_(staged->state.snapshot) : staged.status();
  if (!verdict.ok()) {
    spdlog::warn("xds NACK type={} revision={} nonce={}: {}", response.type_url(),
                 response.system_version_info(), response.nonce(), std::string(verdict.message()));
    NoteError(std::string(verdict.message()));
    {
      absl::MutexLock lock(&mu_);
      ++status_.nacks;
    }
    return stream.Write(DeltaSubscriptionState::Nack(response, verdict));
  }
  if (on_accepted_) on_accepted_(staged->state, staged->change);
  state_.Commit(*std::move(staged));
  {
    absl::MutexLock lock(&mu_);
    ++status_.acks;
    status_.revision = state_.held().snapshot.revision;
  }
  return stream.Write(DeltaSubscriptionState::Ack(response));
}

}  // namespace meridian::agent
