#include "controlplane/server/api_call_counter.h"

#include <string_view>

#include "controlplane/xds/xds_server.h"

namespace meridian::server {

class ApiCallCounter::Interceptor final : public grpc::experimental::Interceptor {
 public:
  explicit Interceptor(std::atomic<int>& in_flight) : in_flight_(in_flight) { ++in_flight_; }
  ~Interceptor() override { --in_flight_; }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  std::atomic<int>& in_flight_;
};

class ApiCallCounter::Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(std::atomic<int>& in_flight) : in_flight_(in_flight) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // No interceptor at all on ADS calls (the xDS server finishes and counts its streams
    // itself): their many small writes skip interception then.
    const std::string_view method = info->method();
    if (method == xds::XdsServer::kDeltaMethod || method == xds::XdsServer::kSotwMethod) {
      return nullptr;
    }
    return new Interceptor(in_flight_);
  }

 private:
  std::atomic<int>& in_flight_;
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ApiCallCounter::InterceptorFactory() {
  return std::make_unique<Factory>(in_flight_);
}

}  // namespace meridian::server
