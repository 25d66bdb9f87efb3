// meridian_bare_broadcast_server: the physical limit the fan-out benchmark compares Meridian
// with. A gRPC callback-API server that serializes each published message once into a shared
// grpc::ByteBuffer and writes it to every subscriber: one write in flight per stream and a
// latest-wins slot behind it, no store, no per-stream protocol state. Subscribers are written
// connection by connection, as meridian-cp does, so the client reads many streams' messages at
// once (docs/performance.md). Runs until SIGTERM/SIGINT.
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "broadcast/broadcast.grpc.pb.h"

namespace meridian::bench {
namespace {

using SharedBytes = std::shared_ptr<const grpc::ByteBuffer>;

class BroadcastServer;

// One subscription. Thread-safety: Offer comes from Publish threads, reactions from gRPC's;
// the write state is under mu_.
class SubscriberStream : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  SubscriberStream(BroadcastServer& server, std::string peer)
      : server_(server), peer_(std::move(peer)) {}

  const std::string& peer() const { return peer_; }

  // Writes `bytes` now, or keeps it as the next write (replacing an older one still waiting).
  void Offer(SharedBytes bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      if (in_flight_ != nullptr) {
        next_ = std::move(bytes);
        return;
      }
      in_flight_ = std::move(bytes);
    }
    StartWrite(in_flight_.get());
  }

  void End(const grpc::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_ = ok ? std::move(next_) : nullptr;
      next_ = nullptr;
      if (in_flight_ == nullptr) return;
    }
    StartWrite(in_flight_.get());
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }
  void OnDone() override;

 private:
  BroadcastServer& server_;
  const std::string peer_;  // the client's address: the same for one connection's streams
  std::mutex mu_;
  SharedBytes in_flight_;  // keeps the bytes alive until OnWriteDone
  SharedBytes next_;
  bool finished_ = false;
};

class BroadcastServer
    : public Broadcast::WithRawCallbackMethod_Subscribe<Broadcast::CallbackService> {
 public:
  BroadcastServer() : latest_(Serialize(0, "")) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* /*request*/) override {
    auto* stream = new SubscriberStream(*this, context->peer());
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_[stream->peer()].insert(stream);
    stream->Offer(latest_);
    return stream;
  }

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const PublishRequest* request,
                                    PublishResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      latest_ = Serialize(++sequence_, request->payload());
      for (auto& [peer, streams] : subscribers_) {
        for (SubscriberStream* stream : streams) stream->Offer(latest_);
      }
      response->set_sequence(sequence_);
    }
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void Remove(SubscriberStream* stream) {
    std::lock_guard<std::mutex> lock(mu_);
    auto streams = subscribers_.find(stream->peer());
    if (streams == subscribers_.end()) return;
    streams->second.erase(stream);
    if (streams->second.empty()) subscribers_.erase(streams);
  }

  void EndAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [peer, streams] : subscribers_) {
      for (SubscriberStream* stream : streams) {
        stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
      }
    }
  }

 private:
  // Once per publish: every subscriber writes these same bytes.
  static SharedBytes Serialize(int64_t sequence, const std::string& payload) {
    Update update;
    update.set_sequence(sequence);
    update.set_payload(payload);
    grpc::Slice slice(update.SerializeAsString());
    return std::make_shared<const grpc::ByteBuffer>(&slice, 1);
  }

  std::mutex mu_;
  absl::btree_map<std::string, absl::flat_hash_set<SubscriberStream*>> subscribers_;  // by peer
  SharedBytes latest_;
  int64_t sequence_ = 0;
};

void SubscriberStream::OnDone() {
  server_.Remove(this);
  delete this;
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  std::string address = "127.0.0.1";
  int port = 0;
  CLI::App app{"Bare gRPC broadcast server (fan-out benchmark baseline)"};
  app.add_option("--address", address, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "port to listen on (0 = any free port)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // The physical limit: Debian's Abseil checks lock order on every lock, gRPC's own mutexes
  // included, unless told not to.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  meridian::bench::BroadcastServer service;
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address + ":" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "bare broadcast server: cannot listen on %s:%d\n", address.c_str(), port);
    return 1;
  }
  std::printf("bare broadcast server listening on %s:%d\n", address.c_str(), bound_port);
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  service.EndAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
