#pragma once

#include "controlplane/convergence/convergence_tracker.h"
#include "grpcpp/grpcpp.h"
#include "meridian/v1/convergence.grpc.pb.h"

namespace meridian::api {

// meridian.v1.ConvergenceService over the ConvergenceTracker. Thread-safe.
class ConvergenceGrpcService final : public v1::ConvergenceService::Service {
 public:
  explicit ConvergenceGrpcService(convergence::ConvergenceTracker& tracker);

  grpc::Status ListNodes(grpc::ServerContext* context, const v1::ListNodesRequest* request,
                         v1::ListNodesResponse* response) override;
  grpc::Status GetNode(grpc::ServerContext* context, const v1::GetNodeRequest* request,
                       v1::NodeStatus* response) override;
  grpc::Status GetRevisionStatus(grpc::ServerContext* context,
                                 const v1::GetRevisionStatusRequest* request,
                                 v1::RevisionStatus* response) override;
  grpc::Status WaitForRevision(grpc::ServerContext* context,
                               const v1::WaitForRevisionRequest* request,
                               v1::RevisionStatus* response) override;

 private:
  convergence::ConvergenceTracker& tracker_;
};

}  // namespace meridian::api
