#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace meridian::testing {

// A scripted ADS client for tests: writes requests, and a reader thread queues responses so
// a test can wait for the next one with a bound (or check that none arrives).
template <typename Request, typename Response>
class AdsTestClient {
 public:
  using Stream = grpc::ClientReaderWriter<Request, Response>;
  using Opener = std::function<std::unique_ptr<Stream>(grpc::ClientContext*)>;

  explicit AdsTestClient(const Opener& open, bool start_reading = true) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    stream_ = open(&context_);
    if (start_reading) StartReading();
  }

  ~AdsTestClient() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  void StartReading() {
    reader_ = std::thread([this] {
      Response response;
      while (stream_->Read(&response)) {
        absl::MutexLock lock(&mu_);
        responses_.push_back(response);
      }
      absl::MutexLock lock(&mu_);
      closed_ = true;
    });
  }

  bool Send(const Request& request) { return stream_->Write(request); }

  std::optional<Response> Next(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](AdsTestClient* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               return !self->responses_.empty() || self->closed_;
                             },
                             this),
                         timeout);
    if (responses_.empty()) return std::nullopt;
    Response response = std::move(responses_.front());
    responses_.pop_front();
    return response;
  }

  grpc::Status Finish() {
    stream_->WritesDone();
    if (reader_.joinable()) reader_.join();
    return stream_->Finish();
  }

  // Waits until the stream ends and returns its status (for streams the server rejects).
  grpc::Status AwaitClose() {
    if (reader_.joinable()) reader_.join();
    return stream_->Finish();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<Stream> stream_;
  std::thread reader_;
  absl::Mutex mu_;
  std::deque<Response> responses_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

using DeltaClient = AdsTestClient<envoy::service::discovery::v3::DeltaDiscoveryRequest,
                                  envoy::service::discovery::v3::DeltaDiscoveryResponse>;
using SotwClient = AdsTestClient<envoy::service::discovery::v3::DiscoveryRequest,
                                 envoy::service::discovery::v3::DiscoveryResponse>;

}  // namespace meridian::testing
