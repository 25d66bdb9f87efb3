#include "bench/write_clients.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "etcdserverpb/rpc.grpc.pb.h"
#include "meridian/v1/config_service.grpc.pb.h"

namespace meridian::bench {
namespace {

// A 10,000-resource batch and its response are a few MiB, past gRPC's 4 MiB default.
constexpr int kMaxMessageBytes = 256 * 1024 * 1024;
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kWriteDeadline = std::chrono::seconds(30);
constexpr auto kBatchDeadline = std::chrono::seconds(300);

absl::Status FromGrpc(const grpc::Status& status, const char* what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

// Every client gets its own channel and, through a private subchannel pool, its own TCP
// connection, as separate processes would.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Dial(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", target));
  }
  return channel;
}

void SetDeadline(grpc::ClientContext& context, std::chrono::seconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

class MeridianWriteClient : public WriteClient {
 public:
  explicit MeridianWriteClient(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::ConfigService::NewStub(std::move(channel))) {}

  absl::Status Put(const v1::Resource& resource) override {
    v1::PutResourceRequest request;
    *request.mutable_resource() = resource;
    v1::WriteResponse response;
    grpc::ClientContext context;
    SetDeadline(context, kWriteDeadline);
    context.AddMetadata("x-meridian-actor", "write-bench");
    return FromGrpc(stub_->PutResource(&context, request, &response), "PutResource");
  }

  absl::Status PutBatch(const std::vector<v1::Resource>& resources) override {
    v1::ApplyChangesRequest request;
    request.set_comment("write benchmark batch");
    request.mutable_changes()->Reserve(static_cast<int>(resources.size()));
    for (const auto& resource : resources) *request.add_changes()->mutable_put() = resource;
    v1::WriteResponse response;
    grpc::ClientContext context;
    SetDeadline(context, kBatchDeadline);
    context.AddMetadata("x-meridian-actor", "write-bench");
    return FromGrpc(stub_->ApplyChanges(&context, request, &response), "ApplyChanges");
  }

 private:
  std::unique_ptr<v1::ConfigService::Stub> stub_;
};

class EtcdWriteClient : public WriteClient {
 public:
  explicit EtcdWriteClient(std::shared_ptr<grpc::Channel> channel)
      : stub_(etcdserverpb::KV::NewStub(std::move(channel))) {}

  absl::Status Put(const v1::Resource& resource) override {
    etcdserverpb::PutRequest request;
    FillPut(resource, request);
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    SetDeadline(context, kWriteDeadline);
    return FromGrpc(stub_->Put(&context, request, &response), "etcd Put");
  }

  absl::Status PutBatch(const std::vector<v1::Resource>& resources) override {
    etcdserverpb::TxnRequest request;
    request.mutable_success()->Reserve(static_cast<int>(resources.size()));
    for (const auto& resource : resources) {
      FillPut(resource, *request.add_success()->mutable_request_put());
    }
    etcdserverpb::TxnResponse response;
    grpc::ClientContext context;
    SetDeadline(context, kBatchDeadline);
    absl::Status status = FromGrpc(stub_->Txn(&context, request, &response), "etcd Txn");
    if (status.ok() && !response.succeeded()) return absl::AbortedError("etcd Txn: not applied");
    return status;
  }

 private:
  // The same bytes Meridian stores: the serialized resource.
  static void FillPut(const v1::Resource& resource, etcdserverpb::PutRequest& put) {
    put.set_key(absl::StrCat("/bench/", resource.name()));
    resource.SerializeToString(put.mutable_value());
  }

  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
};

}  // namespace

v1::Resource BenchResource(const std::string& name) {
  v1::Resource resource;
  resource.set_kind(v1::SERVICE);
  resource.set_environment("bench");
  resource.set_name(name);
  (*resource.mutable_labels())["app"] = "checkout";
  (*resource.mutable_labels())["team"] = "payments";
  (*resource.mutable_labels())["tier"] = "backend";
  v1::ServiceSpec& spec = *resource.mutable_service();
  auto* http = spec.add_ports();
  http->set_name("http");
  http->set_port(8080);
  http->set_protocol(v1::HTTP);
  auto* grpc_port = spec.add_ports();
  grpc_port->set_name("grpc");
  grpc_port->set_port(9090);
  grpc_port->set_protocol(v1::GRPC);
  auto* admin = spec.add_ports();
  admin->set_name("admin");
  admin->set_port(9901);
  admin->set_protocol(v1::HTTP);
  spec.mutable_load_balancing()->set_policy(v1::LEAST_REQUEST);
  spec.mutable_load_balancing()->set_locality_aware(true);
  auto& health = *spec.mutable_health_check();
  health.set_path("/internal/healthz");
  health.set_interval_ms(5000);
  health.set_timeout_ms(1000);
  health.set_healthy_threshold(2);
  health.set_unhealthy_threshold(3);
  auto& breaker = *spec.mutable_circuit_breaker();
  breaker.set_max_connections(1024);
  breaker.set_max_pending_requests(256);
  breaker.set_max_requests(2048);
  breaker.set_consecutive_5xx(5);
  breaker.set_base_ejection_time_ms(30000);
  spec.mutable_timeouts()->set_connect_ms(1000);
  spec.mutable_timeouts()->set_request_ms(15000);
  spec.mutable_timeouts()->set_idle_ms(300000);
  return resource;
}

absl::StatusOr<std::unique_ptr<WriteClient>> ConnectMeridian(const std::string& target) {
  auto channel = Dial(target);
  if (!channel.ok()) return channel.status();
  return std::make_unique<MeridianWriteClient>(*std::move(channel));
}

absl::StatusOr<std::unique_ptr<WriteClient>> ConnectEtcd(const std::string& target) {
  auto channel = Dial(target);
  if (!channel.ok()) return channel.status();
  return std::make_unique<EtcdWriteClient>(*std::move(channel));
}

}  // namespace meridian::bench
