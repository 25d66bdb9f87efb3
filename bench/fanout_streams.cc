#include "bench/fanout_streams.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpcpp/impl/codegen/completion_queue_tag.h>

#include <chrono>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "broadcast/broadcast.grpc.pb.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "etcdserverpb/rpc.grpc.pb.h"
#include "meridian/v1/config_service.grpc.pb.h"

namespace meridian::bench {
namespace {

using envoy::service::discovery::v3::AggregatedDiscoveryService;
using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

constexpr char kEndpointTypeUrl[] = "type.googleapis.com/meridian.v1.Endpoint";
constexpr char kEndpointName[] = "fanout-endpoint";
constexpr char kEtcdPrefix[] = "/bench/fanout/";
constexpr char kEtcdPrefixEnd[] = "/bench/fanout0";  // '/' + 1: every key under the prefix
constexpr size_t kPayloadBytes = 300;
constexpr auto kWriteDeadline = std::chrono::seconds(30);

absl::Status FromGrpc(const grpc::Status& status, const char* what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + kWriteDeadline);
}

v1::Resource FanoutResource(const std::string& environment, int sequence) {
  v1::Resource resource;
  resource.set_kind(v1::ENDPOINT);
  resource.set_environment(environment);
  resource.set_name(kEndpointName);
  (*resource.mutable_labels())["app"] = "checkout";
  (*resource.mutable_labels())["team"] = "payments";
  // Fixed width, so every write has the same size.
  (*resource.mutable_labels())["write"] = absl::StrFormat("%06d", sequence);
  v1::EndpointSpec& spec = *resource.mutable_endpoint();
  spec.set_service("checkout");
  spec.set_address("10.20.30.40");
  spec.set_port(8080);
  // Changes with every write too, so the Envoy projection of the endpoint (its
  // ClusterLoadAssignment) changes with it; 100-199 keeps the size fixed.
  spec.set_weight(100 + sequence % 100);
  spec.set_zone("zone-a");
  (*spec.mutable_labels())["version"] = "v2";
  std::string& padding = (*spec.mutable_labels())["build"];
  while (resource.ByteSizeLong() < kPayloadBytes) padding.push_back('x');
  return resource;
}

// More elements than this in one response (an initial state) are freed once handled.
constexpr int kLargeResponseElements = 64;

// One gRPC core batch that writes a reply and reads the next message, completing once (as
// `tag`) when both are done. gRPC C++ gives a write and a read a completion each; an agent
// that only ever answers the response it just read can pay for one. Written by hand: the C++
// API has no combined operation, and Debian's debug-build gRPC searches every outstanding
// operation of a queue on each completion, so the second one is not free.
class ReplyAndRead final : public grpc::internal::CompletionQueueTag {
 public:
  explicit ReplyAndRead(Subscriber::Tag* tag) : tag_(tag) {}
  ~ReplyAndRead() override { Release(); }

  bool Start(grpc_call* call, const google::protobuf::MessageLite& reply) {
    Release();
    const size_t size = reply.ByteSizeLong();
    grpc_slice slice = grpc_slice_malloc(size);
    reply.SerializeWithCachedSizesToArray(GRPC_SLICE_START_PTR(slice));
    send_ = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    grpc_op ops[2] = {};
    ops[0].op = GRPC_OP_SEND_MESSAGE;
    ops[0].data.send_message.send_message = send_;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &received_;
    return grpc_call_start_batch(call, ops, 2, this, nullptr) == GRPC_CALL_OK;
  }
  // Parses the message read into `message`; false if the stream ended first or it does not
  // parse.
  bool Take(google::protobuf::MessageLite& message) {
    if (received_ == nullptr) return false;
    grpc_byte_buffer_reader reader;
    bool parsed = false;
    if (grpc_byte_buffer_reader_init(&reader, received_) != 0) {
      grpc_slice bytes = grpc_byte_buffer_reader_readall(&reader);
      parsed = message.ParseFromArray(GRPC_SLICE_START_PTR(bytes),
                                      static_cast<int>(GRPC_SLICE_LENGTH(bytes)));
      grpc_slice_unref(bytes);
      grpc_byte_buffer_reader_destroy(&reader);
    }
    Release();
    return parsed;
  }
  bool FinalizeResult(void** tag, bool* /*status*/) override {
    *tag = tag_;
    return true;
  }

 private:
  void Release() {
    if (send_ != nullptr) grpc_byte_buffer_destroy(send_);
    if (received_ != nullptr) grpc_byte_buffer_destroy(received_);
    send_ = received_ = nullptr;
  }

  Subscriber::Tag* const tag_;
  grpc_byte_buffer* send_ = nullptr;
  grpc_byte_buffer* received_ = nullptr;
};

// A subscriber on a bidirectional stream: writes its requests in order, one in flight (the
// first as soon as the call starts), reads until the stream ends, then finishes. A reply to a
// response goes out with the next read as one batch when nothing else is being written.
template <typename Request, typename Response>
class BidiSubscriber : public Subscriber {
 protected:
  using Stream = grpc::ClientAsyncReaderWriter<Request, Response>;

  BidiSubscriber(size_t expected_updates, Request first, const char* what)
      : Subscriber(expected_updates), what_(what) {
    outgoing_.push_back(std::move(first));
  }
  // Queues a request to write after the ones before it (the subclass constructor may add
  // further subscriptions before Start).
  void Send(Request request) { outgoing_.push_back(std::move(request)); }
  // Called by the subclass constructor once it has created the stream.
  void Start(std::unique_ptr<Stream> stream) {
    stream_ = std::move(stream);
    stream_->StartCall(&start_tag_);
  }
  // Records a response; returns the reply to send (an ACK), if any.
  virtual std::optional<Request> OnResponse(const Response& response) = 0;
  // Whether `response` holds many elements (an initial state), worth freeing once handled.
  virtual bool IsLarge(const Response& response) const = 0;

 private:
  void OnEvent(Tag::Op op, bool ok) override {
    switch (op) {
      case Tag::kStart:
        if (!ok) return EndReading();
        WriteNext();
        // Through gRPC C++, which also takes in the initial metadata that Finish relies on.
        stream_->Read(&response_, &read_tag_);
        return;
      case Tag::kRead:
        if (!ok) return EndReading();
        return Answer(Handle());
      case Tag::kReplyAndRead:
        if (!ok || !reply_and_read_.Take(response_)) return EndReading();
        return Answer(Handle());
      case Tag::kWrite:
        outgoing_.pop_front();
        write_in_flight_ = false;
        if (ok && !reading_done_ && !outgoing_.empty()) WriteNext();
        return MaybeFinish();
      case Tag::kFinish:
        return Finished(status_, what_);
    }
  }
  // The next response is parsed into the same message, and parsing first clears every element
  // the message holds: a large one is dropped here instead, so the cost of an initial state
  // is not paid again by the first update after it.
  std::optional<Request> Handle() {
    std::optional<Request> reply = OnResponse(response_);
    if (IsLarge(response_)) response_ = Response();
    return reply;
  }
  // Sends `reply` (if any) and reads the next response.
  void Answer(std::optional<Request> reply) {
    if (reply && outgoing_.empty() && !write_in_flight_) {
      if (!reply_and_read_.Start(context_.c_call(), *reply)) EndReading();
      return;
    }
    if (reply) {
      outgoing_.push_back(std::move(*reply));
      if (!write_in_flight_) WriteNext();
    }
    stream_->Read(&response_, &read_tag_);
  }
  void WriteNext() {
    write_in_flight_ = true;
    stream_->Write(outgoing_.front(), &write_tag_);
  }
  void EndReading() {
    reading_done_ = true;
    MaybeFinish();
  }
  // Finish once nothing else is in flight: the stream's last operation.
  void MaybeFinish() {
    if (!reading_done_ || write_in_flight_ || finishing_) return;
    finishing_ = true;
    stream_->Finish(&status_, &finish_tag_);
  }

  const char* const what_;
  std::unique_ptr<Stream> stream_;
  Response response_;
  // The request being written first; deque, so queued requests never move it.
  std::deque<Request> outgoing_;
  bool write_in_flight_ = false;
  bool reading_done_ = false;
  bool finishing_ = false;
  Tag reply_and_read_tag_{this, Tag::kReplyAndRead};
  ReplyAndRead reply_and_read_{&reply_and_read_tag_};
};

// ----------------------------------------------------------------------------- Meridian
template <typename Request>
Request AgentSubscription(const std::string& node_id, const std::string& environment,
                          const std::string& type_url) {
  Request subscribe;
  subscribe.mutable_node()->set_id(node_id);
  subscribe.mutable_node()->set_cluster("fanout-bench");
  (*subscribe.mutable_node()->mutable_metadata()->mutable_fields())["environment"].set_string_value(
      environment);
  subscribe.set_type_url(type_url);  // no names: wildcard
  return subscribe;
}

int64_t RevisionOf(const std::string& version, StreamProbe& probe) {
  int64_t revision = -1;
  if (!absl::SimpleAtoi(version, &revision)) {
    probe.Fail(absl::StrCat("bad version \"", version, "\""));
  }
  return revision;
}

// An agent: the first request names the node and subscribes (wildcard) to the first type,
// the next ones subscribe to the other types; every response is ACKed with its nonce. A write
// has arrived once the response of the last type carries it (the types listed in push order,
// that is the whole revision).
class MeridianAgent final : public BidiSubscriber<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
 public:
  MeridianAgent(const std::shared_ptr<grpc::Channel>& channel, grpc::CompletionQueue* queue,
                const std::string& node_id, const std::string& environment,
                const std::vector<std::string>& type_urls, size_t expected_updates)
      : BidiSubscriber(
            expected_updates,
            AgentSubscription<DeltaDiscoveryRequest>(node_id, environment, type_urls.front()),
            "ADS stream ended"),
        stub_(AggregatedDiscoveryService::NewStub(channel)),
        arrival_type_url_(type_urls.back()) {
    for (size_t i = 1; i < type_urls.size(); ++i) {
      DeltaDiscoveryRequest subscribe;
      subscribe.set_type_url(type_urls[i]);
      Send(std::move(subscribe));
    }
    Start(stub_->PrepareAsyncDeltaAggregatedResources(&context_, queue));
  }

 private:
  bool IsLarge(const DeltaDiscoveryResponse& response) const override {
    return response.resources_size() > kLargeResponseElements;
  }
  std::optional<DeltaDiscoveryRequest> OnResponse(const DeltaDiscoveryResponse& response) override {
    if (response.type_url() == arrival_type_url_) {
      probe_.Record(RevisionOf(response.system_version_info(), probe_));
    }
    DeltaDiscoveryRequest ack;
    ack.set_type_url(response.type_url());
    ack.set_response_nonce(response.nonce());
    return ack;
  }

  std::unique_ptr<AggregatedDiscoveryService::Stub> stub_;
  const std::string arrival_type_url_;
};

// A proxy on a state-of-the-world ADS stream, as Envoy subscribes: each response carries
// every Endpoint of the environment and is ACKed with its version and nonce.
class SotwProxy final : public BidiSubscriber<DiscoveryRequest, DiscoveryResponse> {
 public:
  SotwProxy(const std::shared_ptr<grpc::Channel>& channel, grpc::CompletionQueue* queue,
            const std::string& node_id, const std::string& environment, size_t expected_updates)
      : BidiSubscriber(expected_updates,
                       AgentSubscription<DiscoveryRequest>(node_id, environment, kEndpointTypeUrl),
                       "ADS stream ended"),
        stub_(AggregatedDiscoveryService::NewStub(channel)) {
    Start(stub_->PrepareAsyncStreamAggregatedResources(&context_, queue));
  }

 private:
  bool IsLarge(const DiscoveryResponse& response) const override {
    return response.resources_size() > kLargeResponseElements;
  }
  std::optional<DiscoveryRequest> OnResponse(const DiscoveryResponse& response) override {
    probe_.Record(RevisionOf(response.version_info(), probe_));
    DiscoveryRequest ack;
    ack.set_type_url(kEndpointTypeUrl);
    ack.set_version_info(response.version_info());
    ack.set_response_nonce(response.nonce());
    return ack;
  }

  std::unique_ptr<AggregatedDiscoveryService::Stub> stub_;
};

class MeridianFanout final : public FanoutTarget {
 public:
  MeridianFanout(std::shared_ptr<grpc::Channel> write_channel, std::string environment,
                 std::string run_id, MeridianProtocol protocol, std::vector<std::string> type_urls)
      : stub_(v1::ConfigService::NewStub(std::move(write_channel))),
        environment_(std::move(environment)),
        run_id_(std::move(run_id)),
        protocol_(protocol),
        type_urls_(std::move(type_urls)) {}

  absl::Status Seed() override { return Write(0).status(); }

  std::unique_ptr<Subscriber> Subscribe(const std::shared_ptr<grpc::Channel>& channel,
                                        grpc::CompletionQueue* queue, int index,
                                        size_t expected_updates) override {
    const std::string node_id = absl::StrCat("fanout-", run_id_, "-", index);
    if (protocol_ == MeridianProtocol::kStateOfTheWorld) {
      return std::make_unique<SotwProxy>(channel, queue, node_id, environment_, expected_updates);
    }
    return std::make_unique<MeridianAgent>(channel, queue, node_id, environment_, type_urls_,
                                           expected_updates);
  }

  absl::StatusOr<int64_t> Write(int sequence) override {
    v1::PutResourceRequest request;
    *request.mutable_resource() = FanoutResource(environment_, sequence);
    v1::WriteResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    context.AddMetadata("x-meridian-actor", "fanout-bench");
    grpc::Status status = stub_->PutResource(&context, request, &response);
    if (!status.ok()) return FromGrpc(status, "PutResource");
    return response.revision();
  }

 private:
  std::unique_ptr<v1::ConfigService::Stub> stub_;
  const std::string environment_;
  const std::string run_id_;
  const MeridianProtocol protocol_;
  const std::vector<std::string> type_urls_;
};

// ----------------------------------------------------------------------------- etcd
etcdserverpb::WatchRequest PrefixWatch() {
  etcdserverpb::WatchRequest request;
  etcdserverpb::WatchCreateRequest& create = *request.mutable_create_request();
  create.set_key(kEtcdPrefix);
  create.set_range_end(kEtcdPrefixEnd);
  return request;
}

// A watcher on the benchmark prefix, alone on its stream as an agent process would be.
class EtcdWatcher final
    : public BidiSubscriber<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse> {
 public:
  EtcdWatcher(const std::shared_ptr<grpc::Channel>& channel, grpc::CompletionQueue* queue,
              size_t expected_updates)
      : BidiSubscriber(expected_updates, PrefixWatch(), "watch ended"),
        stub_(etcdserverpb::Watch::NewStub(channel)) {
    Start(stub_->PrepareAsyncWatch(&context_, queue));
  }

 private:
  bool IsLarge(const etcdserverpb::WatchResponse& response) const override {
    return response.events_size() > kLargeResponseElements;
  }
  std::optional<etcdserverpb::WatchRequest> OnResponse(
      const etcdserverpb::WatchResponse& response) override {
    if (response.canceled()) {
      probe_.Fail(absl::StrCat("watch canceled: ", response.cancel_reason()));
    } else if (response.created()) {
      probe_.Record(response.header().revision());
    } else if (response.events_size() > 0) {
      // The events' own revision: the header may already name a newer one.
      int64_t revision = 0;
      for (const auto& event : response.events()) {
        revision = std::max(revision, event.kv().mod_revision());
      }
      probe_.Record(revision);
    }
    return std::nullopt;  // a watcher never answers
  }

  std::unique_ptr<etcdserverpb::Watch::Stub> stub_;
};

class EtcdFanout final : public FanoutTarget {
 public:
  explicit EtcdFanout(std::shared_ptr<grpc::Channel> write_channel)
      : stub_(etcdserverpb::KV::NewStub(std::move(write_channel))) {}

  absl::Status Seed() override { return Write(0).status(); }

  std::unique_ptr<Subscriber> Subscribe(const std::shared_ptr<grpc::Channel>& channel,
                                        grpc::CompletionQueue* queue, int /*index*/,
                                        size_t expected_updates) override {
    return std::make_unique<EtcdWatcher>(channel, queue, expected_updates);
  }

  absl::StatusOr<int64_t> Write(int sequence) override {
    etcdserverpb::PutRequest request;
    request.set_key(absl::StrCat(kEtcdPrefix, kEndpointName));
    FanoutResource("bench", sequence).SerializeToString(request.mutable_value());
    etcdserverpb::PutResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->Put(&context, request, &response);
    if (!status.ok()) return FromGrpc(status, "etcd Put");
    return response.header().revision();
  }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> stub_;
};

// ----------------------------------------------------------------------------- bare
class BareSubscriber final : public Subscriber {
 public:
  BareSubscriber(const std::shared_ptr<grpc::Channel>& channel, grpc::CompletionQueue* queue,
                 int index, size_t expected_updates)
      : Subscriber(expected_updates), stub_(Broadcast::NewStub(channel)) {
    request_.set_subscriber(absl::StrCat("fanout-", index));
    stream_ = stub_->PrepareAsyncSubscribe(&context_, request_, queue);
    stream_->StartCall(&start_tag_);
  }

 private:
  void OnEvent(Tag::Op op, bool ok) override {
    switch (op) {
      case Tag::kStart:
      case Tag::kRead:
        if (!ok) {
          stream_->Finish(&status_, &finish_tag_);
          return;
        }
        if (op == Tag::kRead) probe_.Record(update_.sequence());
        stream_->Read(&update_, &read_tag_);
        return;
      case Tag::kWrite:
      case Tag::kReplyAndRead:
        return;  // never writes
      case Tag::kFinish:
        return Finished(status_, "subscription ended");
    }
  }

  std::unique_ptr<Broadcast::Stub> stub_;
  std::unique_ptr<grpc::ClientAsyncReader<Update>> stream_;
  SubscribeRequest request_;
  Update update_;
};

class BareFanout final : public FanoutTarget {
 public:
  explicit BareFanout(std::shared_ptr<grpc::Channel> write_channel)
      : stub_(Broadcast::NewStub(std::move(write_channel))) {}

  // New subscribers get the latest publication first.
  absl::Status Seed() override { return Write(0).status(); }

  std::unique_ptr<Subscriber> Subscribe(const std::shared_ptr<grpc::Channel>& channel,
                                        grpc::CompletionQueue* queue, int index,
                                        size_t expected_updates) override {
    return std::make_unique<BareSubscriber>(channel, queue, index, expected_updates);
  }

  absl::StatusOr<int64_t> Write(int sequence) override {
    PublishRequest request;
    FanoutResource("bench", sequence).SerializeToString(request.mutable_payload());
    PublishResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->Publish(&context, request, &response);
    if (!status.ok()) return FromGrpc(status, "Publish");
    return response.sequence();
  }

 private:
  std::unique_ptr<Broadcast::Stub> stub_;
};

}  // namespace

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void StreamProbe::Record(int64_t revision) {
  const int64_t now = NowNanos();
  absl::MutexLock lock(&mu_);
  arrivals_.emplace_back(now, revision);
  newest_ = std::max(newest_, revision);
}

void StreamProbe::Fail(std::string error) {
  absl::MutexLock lock(&mu_);
  if (!error_) error_ = std::move(error);
}

std::optional<int64_t> StreamProbe::FirstArrivalAtOrAfter(int64_t revision) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [arrival, carried] : arrivals_) {
    if (carried >= revision) return arrival;
  }
  return std::nullopt;
}

int64_t StreamProbe::newest_revision() const {
  absl::MutexLock lock(&mu_);
  return newest_;
}

std::optional<std::string> StreamProbe::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

bool Subscriber::WaitDone(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
}

void Subscriber::Finished(const grpc::Status& status, const char* what) {
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    probe_.Fail(absl::StrCat(what, ": ", status.error_code(), " ", status.error_message()));
  }
  absl::MutexLock lock(&mu_);
  done_ = true;
}

ClientQueues::ClientQueues(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    auto& queue = queues_.emplace_back(std::make_unique<grpc::CompletionQueue>());
    threads_.emplace_back([queue = queue.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) static_cast<Subscriber::Tag*>(tag)->Run(ok);
    });
  }
}

ClientQueues::~ClientQueues() {
  for (auto& queue : queues_) queue->Shutdown();
  for (auto& thread : threads_) thread.join();
}

std::string FanoutPayload(const std::string& environment, int sequence) {
  return FanoutResource(environment, sequence).SerializeAsString();
}

std::unique_ptr<FanoutTarget> MeridianTarget(std::shared_ptr<grpc::Channel> write_channel,
                                             std::string environment, std::string run_id,
                                             MeridianProtocol protocol,
                                             std::vector<std::string> type_urls) {
  if (type_urls.empty()) type_urls.push_back(kEndpointTypeUrl);
  return std::make_unique<MeridianFanout>(std::move(write_channel), std::move(environment),
                                          std::move(run_id), protocol, std::move(type_urls));
}

std::unique_ptr<FanoutTarget> EtcdTarget(std::shared_ptr<grpc::Channel> write_channel) {
  return std::make_unique<EtcdFanout>(std::move(write_channel));
}

std::unique_ptr<FanoutTarget> BareTarget(std::shared_ptr<grpc::Channel> write_channel) {
  return std::make_unique<BareFanout>(std::move(write_channel));
}

}  // namespace meridian::bench
