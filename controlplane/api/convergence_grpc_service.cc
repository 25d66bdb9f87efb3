#include "controlplane/api/convergence_grpc_service.h"

#include "controlplane/api/status_mapping.h"

namespace meridian::api {
namespace {

constexpr int64_t kDefaultWaitMs = 30000;
constexpr int64_t kMaxWaitMs = 600000;

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace

ConvergenceGrpcService::ConvergenceGrpcService(convergence::ConvergenceTracker& tracker)
    : tracker_(tracker) {}

grpc::Status ConvergenceGrpcService::ListNodes(grpc::ServerContext*,
                                               const v1::ListNodesRequest* request,
                                               v1::ListNodesResponse* response) {
  return Reply(tracker_.ListNodes(request->environment(), request->state()), response);
}

grpc::Status ConvergenceGrpcService::GetNode(grpc::ServerContext*,
                                             const v1::GetNodeRequest* request,
                                             v1::NodeStatus* response) {
  return Reply(tracker_.GetNode(request->id()), response);
}

grpc::Status ConvergenceGrpcService::GetRevisionStatus(grpc::ServerContext*,
                                                       const v1::GetRevisionStatusRequest* request,
                                                       v1::RevisionStatus* response) {
  return Reply(tracker_.RevisionStatus(request->revision()), response);
}

grpc::Status ConvergenceGrpcService::WaitForRevision(grpc::ServerContext*,
                                                     const v1::WaitForRevisionRequest* request,
                                                     v1::RevisionStatus* response) {
  const int64_t timeout_ms = request->timeout_ms() == 0 ? kDefaultWaitMs : request->timeout_ms();
  if (timeout_ms < 0 || timeout_ms > kMaxWaitMs) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "timeout_ms: must be 0..600000");
  }
  return Reply(tracker_.WaitForRevision(request->revision(), absl::Milliseconds(timeout_ms)),
               response);
}

}  // namespace meridian::api
