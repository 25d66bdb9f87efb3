#include "controlplane/xds/ads_stream.h"

#include "absl/strings/str_cat.h"
#include "controlplane/model/validation.h"
#include "spdlog/spdlog.h"

namespace meridian::xds {
namespace {

std::string MetadataString(const envoy::config::core::v3::Node& node, const std::string& key) {
  const auto& fields = node.metadata().fields();
  auto it = fields.find(key);
  if (it == fields.end() || !it->second.has_string_value()) return "";
  return it->second.string_value();
}

}  // namespace

bool ParseByteBuffer(const grpc::ByteBuffer& buffer, google::protobuf::Message& message) {
  // Requests (ACKs above all) are small and nearly always one slice: parse it in place.
  grpc::Slice single;
  if (buffer.TrySingleSlice(&single).ok()) {
    return message.ParseFromArray(single.begin(), static_cast<int>(single.size()));
  }
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const auto& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return message.ParseFromString(bytes);
}

AdsStream::AdsStream(std::unique_ptr<AsyncCall> call, StreamContext context, uint64_t id)
    : AsyncBidiReactor(std::move(call)), context_(context), id_(id) {}

AdsStream::~AdsStream() = default;

absl::Status AdsStream::IdentifyNode(const envoy::config::core::v3::Node& node) {
  if (node.id().empty()) {
    return absl::InvalidArgumentError("node.id: the first request must identify the node");
  }
  NodeIdentity identity;
  identity.id = node.id();
  identity.cluster = node.cluster();
  identity.environment = MetadataString(node, "environment");
  if (identity.environment.empty()) identity.environment = node.cluster();
  if (absl::Status status = model::ValidateName("node.metadata.environment", identity.environment);
      !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        status.message(), " (set node metadata \"environment\" or node.cluster to the "
                          "environment whose config this node receives)"));
  }
  identity.zone = MetadataString(node, "zone");
  if (identity.zone.empty()) identity.zone = node.locality().zone();
  identity.user_agent = node.user_agent_version().empty()
                            ? node.user_agent_name()
                            : absl::StrCat(node.user_agent_name(), "/", node.user_agent_version());
  node_ = std::move(identity);
  context_.tracker.StreamOpened(node_, id_);
  return absl::OkStatus();
}

std::string AdsStream::NextNonce() { return absl::StrCat(id_, "-", ++nonce_counter_); }

void AdsStream::RecordNack(const std::string& type_url, int64_t revision,
                           const std::string& error) {
  spdlog::warn("xds NACK node={} env={} type={} revision={} error={}", node_.id,
               node_.environment, type_url, revision, error);
  context_.tracker.Nacked(node_, type_url, revision, error);
  rejected_[type_url] = revision;
}

void AdsStream::RecordAck(const std::string& type_url, int64_t revision) {
  if (rejected_.empty()) return;  // the common case: skip hashing the type URL
  auto rejected = rejected_.find(type_url);
  if (rejected != rejected_.end() && revision > rejected->second) rejected_.erase(rejected);
}

void AdsStream::RecordSent(int64_t revision) { context_.tracker.Sent(node_, revision); }

void AdsStream::UpdateSynced() {
  if (!identified()) return;
  // Synced and answered each advance on their own: a rejection that ends without a new
  // revision (the client unsubscribed what it rejected) still reports the node in sync.
  int64_t& reported = rejected_.empty() ? synced_revision_ : answered_revision_;
  if (seen_revision_ <= reported || !Settled()) return;
  reported = seen_revision_;
  if (rejected_.empty()) {
    context_.tracker.Synced(node_, reported);
  } else {
    context_.tracker.Answered(node_, reported);
  }
}

void AdsStream::OnRevision(int64_t base_revision, int64_t revision,
                           const std::vector<const IndexChange*>& changes) {
  Next next = Next::kNothing;
  grpc::Status finish;
  const grpc::ByteBuffer* shared = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_status_) return;
    const bool in_step = !write_in_flight_ && seen_revision_ == base_revision;
    // A stream that registered after the index took this revision has already read it.
    const bool already_seen = revision <= seen_revision_;
    seen_revision_ = std::max(seen_revision_, revision);
    if (in_step) shared = TakeSharedResponse(revision, changes);
    if (shared != nullptr) {
      write_in_flight_ = true;
    } else {
      MarkChanged(changes, already_seen);
      next = PrepareNext(finish);
    }
  }
  // Outside the lock. The shared buffer outlives this call (the fan-out waits for every
  // stream), and Write takes its own reference to the bytes.
  if (shared != nullptr) StartWrite(shared);
  Perform(next, finish);
}

void AdsStream::Shutdown(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || finish_status_) return;
    finish_status_ = status;
  }
  WriteOrFinish();
}

void AdsStream::OnReadDone(bool ok) {
  std::string register_environment;
  bool keep_reading = false;
  {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      // The client closed its side or the call was cancelled.
      if (!finish_status_) finish_status_ = grpc::Status::OK;
    } else if (!finish_status_) {
      absl::Status status = HandleRequest(read_buffer_);
      if (!status.ok()) {
        finish_status_ = grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                                      std::string(status.message()));
      } else if (identified() && !registered_) {
        registered_ = true;
        register_environment = node_.environment;
      }
    }
    // Parsed: an idle stream should not keep the request's bytes (and the transport's read
    // block they point into) alive until the next request.
    read_buffer_.Clear();
    keep_reading = !finish_status_.has_value();
  }
  if (!register_environment.empty()) {
    // Registered before reading the index (and outside mu_: fan-out locks the registry, then
    // streams): any revision applied after this reaches us through OnRevision, any before
    // it is already in the index.
    context_.registry.Register(this, register_environment);
    absl::MutexLock lock(&mu_);
    seen_revision_ = std::max(seen_revision_, context_.index.revision());
    keep_reading = !finish_status_.has_value();
  }
  if (keep_reading) StartRead(&read_buffer_);
  WriteOrFinish();
}

void AdsStream::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_buffer_.Clear();  // written: free it now rather than when the next push replaces it
    write_in_flight_ = false;
    if (!ok && !finish_status_) finish_status_ = grpc::Status::CANCELLED;
  }
  WriteOrFinish();
}

AdsStream::Next AdsStream::PrepareNext(grpc::Status& finish) {
  if (finished_ || write_in_flight_) return Next::kNothing;
  Next next = Next::kNothing;
  if (finish_status_) {
    finished_ = true;
    finish = *finish_status_;
    next = Next::kFinish;
  } else if (std::optional<grpc::ByteBuffer> response = NextResponse()) {
    write_buffer_ = std::move(*response);
    write_in_flight_ = true;
    next = Next::kWrite;
  }
  UpdateSynced();
  return next;
}

void AdsStream::WriteOrFinish() {
  Next next = Next::kNothing;
  grpc::Status finish;
  {
    absl::MutexLock lock(&mu_);
    next = PrepareNext(finish);
  }
  Perform(next, finish);
}

void AdsStream::Perform(Next next, const grpc::Status& finish) {
  if (next == Next::kWrite) StartWrite(&write_buffer_);
  if (next == Next::kFinish) Finish(finish);
}

void AdsStream::OnDone() {
  bool registered = false;
  NodeIdentity node;
  {
    absl::MutexLock lock(&mu_);
    registered = registered_;
    node = node_;
  }
  context_.registry.Unregister(this, registered ? node.environment : "");
  if (registered) context_.tracker.StreamClosed(node, id_);
  delete this;
}

}  // namespace meridian::xds
