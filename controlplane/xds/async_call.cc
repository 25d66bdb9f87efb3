#include "controlplane/xds/async_call.h"

#include <utility>

namespace meridian::xds {
namespace {

// Calls waiting to be accepted per queue: a burst of reconnecting agents is accepted without
// waiting for the queue thread to post the next request.
constexpr int kPendingAcceptsPerQueue = 8;

}  // namespace

AsyncBidiReactor::AsyncBidiReactor(std::unique_ptr<AsyncCall> call) : call_(std::move(call)) {}

AsyncBidiReactor::~AsyncBidiReactor() = default;

void AsyncBidiReactor::StartRead(grpc::ByteBuffer* buffer) {
  in_flight_.fetch_add(1);
  call_->stream.Read(buffer, &read_tag_);
}

void AsyncBidiReactor::StartWrite(const grpc::ByteBuffer* buffer) {
  in_flight_.fetch_add(1);
  call_->stream.Write(*buffer, &write_tag_);
}

void AsyncBidiReactor::Finish(const grpc::Status& status) {
  in_flight_.fetch_add(1);
  call_->stream.Finish(status, &finish_tag_);
}

void AsyncBidiReactor::Complete(Op op, bool ok) {
  switch (op) {
    case Op::kRead:
      OnReadDone(ok);
      break;
    case Op::kWrite:
      OnWriteDone(ok);
      break;
    case Op::kFinish:
      finish_done_ = true;
      // The status is out; a read still waiting (the client never half-closed) must not
      // keep the call alive.
      if (in_flight_.load() > 1) call_->context.TryCancel();
      break;
  }
  // Finish is the last operation started, and its completion sets finish_done_ on this same
  // thread, so "nothing in flight after Finish completed" is final.
  if (in_flight_.fetch_sub(1) == 1 && finish_done_) OnDone();
}

RejectingReactor::RejectingReactor(std::unique_ptr<AsyncCall> call, const grpc::Status& status)
    : AsyncBidiReactor(std::move(call)) {
  Finish(status);
}

// Keeps one call request outstanding on a queue, and another after each arrival.
class AsyncCallQueues::Acceptor final : public CompletionTag {
 public:
  Acceptor(AsyncCallQueues& owner, grpc::ServerCompletionQueue* queue)
      : owner_(owner), queue_(queue) {}

  void Request() {
    call_ = std::make_unique<AsyncCall>();
    call_->queue = queue_;
    owner_.service_.RequestCall(&call_->context, &call_->stream, queue_, queue_, this);
  }

  void Run(bool ok) override {
    if (!ok) {  // the server is shutting down: no more calls
      delete this;
      return;
    }
    owner_.on_call_(std::move(call_));
    Request();
  }

 private:
  AsyncCallQueues& owner_;
  grpc::ServerCompletionQueue* const queue_;
  std::unique_ptr<AsyncCall> call_;
};

AsyncCallQueues::AsyncCallQueues(size_t threads, CallHandler on_call)
    : thread_count_(std::max<size_t>(threads, 1)), on_call_(std::move(on_call)) {}

AsyncCallQueues::~AsyncCallQueues() { Drain(); }

void AsyncCallQueues::AddTo(grpc::ServerBuilder& builder) {
  builder.RegisterAsyncGenericService(&service_);
  for (size_t i = 0; i < thread_count_; ++i) queues_.push_back(builder.AddCompletionQueue());
}

void AsyncCallQueues::Start() {
  for (auto& queue : queues_) {
    for (int i = 0; i < kPendingAcceptsPerQueue; ++i) {
      (new Acceptor(*this, queue.get()))->Request();
    }
    threads_.emplace_back([queue = queue.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->Run(ok);
    });
  }
}

void AsyncCallQueues::Drain() {
  if (drained_) return;
  drained_ = true;
  for (auto& queue : queues_) queue->Shutdown();
  for (auto& thread : threads_) thread.join();
  if (threads_.empty()) {
    // Never started: the queues still have to be emptied before they are destroyed.
    for (auto& queue : queues_) {
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) {
      }
    }
  }
}

}  // namespace meridian::xds
