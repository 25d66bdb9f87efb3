#pragma once

#include <atomic>

#include "absl/time/time.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/store/config_store.h"
#include "grpcpp/grpcpp.h"
#include "meridian/v1/config_service.grpc.pb.h"

namespace meridian::api {

// meridian.v1.ConfigService over the store: each RPC translates its request into one store
// call and redacts secrets from everything it returns. Watch is a synchronous server stream
// that waits on the ChangeFeed in bounded slices so a cancelled call or a server shutdown
// ends it promptly. The actor comes from the `x-meridian-actor` metadata. Thread-safe.
class ConfigGrpcService final : public v1::ConfigService::Service {
 public:
  ConfigGrpcService(store::ConfigStore& store, store::ChangeFeed& feed,
                    absl::Duration watch_poll_interval = absl::Seconds(1));

  grpc::Status GetResource(grpc::ServerContext* context, const v1::GetResourceRequest* request,
                           v1::Resource* response) override;
  grpc::Status ListResources(grpc::ServerContext* context, const v1::ListResourcesRequest* request,
                             v1::ListResourcesResponse* response) override;
  grpc::Status PutResource(grpc::ServerContext* context, const v1::PutResourceRequest* request,
                           v1::WriteResponse* response) override;
  grpc::Status DeleteResource(grpc::ServerContext* context,
                              const v1::DeleteResourceRequest* request,
                              v1::WriteResponse* response) override;
  grpc::Status ApplyChanges(grpc::ServerContext* context, const v1::ApplyChangesRequest* request,
                            v1::WriteResponse* response) override;
  grpc::Status GetHistory(grpc::ServerContext* context, const v1::GetHistoryRequest* request,
                          v1::GetHistoryResponse* response) override;
  grpc::Status GetRevision(grpc::ServerContext* context, const v1::GetRevisionRequest* request,
                           v1::RevisionRecord* response) override;
  grpc::Status Diff(grpc::ServerContext* context, const v1::DiffRequest* request,
                    v1::DiffResponse* response) override;
  grpc::Status Rollback(grpc::ServerContext* context, const v1::RollbackRequest* request,
                        v1::WriteResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::WatchEvent>* writer) override;

  // Ends open Watch streams (UNAVAILABLE) within one poll interval, so that a server
  // shutdown does not wait for its deadline on streams that never finish by themselves.
  void StopWatches() { stopping_ = true; }

 private:
  store::ConfigStore& store_;
  store::ChangeFeed& feed_;
  const absl::Duration watch_poll_interval_;
  std::atomic<bool> stopping_{false};
};

}  // namespace meridian::api
