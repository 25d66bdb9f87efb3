#pragma once

#include <atomic>
#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace meridian::server {

// Counts the gRPC calls in flight outside the ADS service (the config and convergence APIs),
// from the moment gRPC creates a call's interceptors until it destroys the call. Shutdown
// uses it to tell a call still finishing (worth the grace period) from a client that merely
// keeps its connection open after the GOAWAY, which gRPC's own shutdown would wait for too.
class ApiCallCounter {
 public:
  // The factory to install with ServerBuilder::experimental().SetInterceptorCreators. It
  // refers to this counter, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  int in_flight() const { return in_flight_.load(); }

 private:
  class Interceptor;
  class Factory;

  std::atomic<int> in_flight_{0};
};

}  // namespace meridian::server
