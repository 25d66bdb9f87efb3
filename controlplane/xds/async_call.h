#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/status.h"

namespace meridian::xds {

// Something a completion queue thread runs when the operation it tagged completes.
class CompletionTag {
 public:
  virtual ~CompletionTag() = default;
  virtual void Run(bool ok) = 0;
};

// One generic call's gRPC objects, created before the call arrives (gRPC's async API fills
// them in).
struct AsyncCall {
  grpc::GenericServerContext context;
  grpc::GenericServerAsyncReaderWriter stream{&context};
  size_t queue_index = 0;  // of the AsyncCallQueues queue whose thread runs its completions
};

// A bidirectional generic call driven through a completion queue, with the shape of a
// callback-API reactor: StartRead/StartWrite/Finish, answered by OnReadDone/OnWriteDone and,
// once every operation has completed after Finish, OnDone (which may `delete this`).
// At most one read and one write in flight; nothing may be started after Finish except that
// a read already in flight completes. Completions of one call all run on its queue's single
// thread; StartWrite and Finish may come from any thread.
//
// Why not the callback API: Debian's gRPC is built without NDEBUG, and in that build every
// completion does a linear search of all the outstanding operations of its completion queue,
// under the queue's mutex. Callback-API calls all share one process-wide queue, so at 10,000
// streams each completion scanned ~20,000 tags. Here streams are spread over several queues,
// and an idle stream has one outstanding operation (its read) instead of two.
class AsyncBidiReactor {
 public:
  explicit AsyncBidiReactor(std::unique_ptr<AsyncCall> call);
  virtual ~AsyncBidiReactor();

  AsyncBidiReactor(const AsyncBidiReactor&) = delete;
  AsyncBidiReactor& operator=(const AsyncBidiReactor&) = delete;

  size_t queue_index() const { return call_->queue_index; }
  // The client's address ("ipv4:127.0.0.1:40312"): the same for every stream of one
  // connection. Kept from the start: gRPC reports "unknown" once the call has ended.
  const std::string& peer() const { return peer_; }

 protected:
  void StartRead(grpc::ByteBuffer* buffer);
  void StartWrite(const grpc::ByteBuffer* buffer);
  void Finish(const grpc::Status& status);

  virtual void OnReadDone(bool ok) = 0;
  virtual void OnWriteDone(bool ok) = 0;
  virtual void OnDone() = 0;

 private:
  enum class Op { kRead, kWrite, kFinish };
  class OpTag final : public CompletionTag {
   public:
    OpTag(AsyncBidiReactor* reactor, Op op) : reactor_(reactor), op_(op) {}
    void Run(bool ok) override { reactor_->Complete(op_, ok); }

   private:
    AsyncBidiReactor* const reactor_;
    const Op op_;
  };

  void Complete(Op op, bool ok);

  std::unique_ptr<AsyncCall> call_;
  const std::string peer_;
  OpTag read_tag_{this, Op::kRead};
  OpTag write_tag_{this, Op::kWrite};
  OpTag finish_tag_{this, Op::kFinish};
  std::atomic<int> in_flight_{0};
  bool finish_done_ = false;  // only touched on the queue thread
};

// Finishes a call at once with `status` (stream limit reached, unknown method).
class RejectingReactor final : public AsyncBidiReactor {
 public:
  RejectingReactor(std::unique_ptr<AsyncCall> call, const grpc::Status& status);

 private:
  void OnReadDone(bool) override {}
  void OnWriteDone(bool) override {}
  void OnDone() override { delete this; }
};

// The completion queues and threads behind an AsyncGenericService: accepts calls on every
// queue and hands each to `on_call`, which must adopt it into a reactor. Lifecycle, in order:
// AddTo(builder) before BuildAndStart, Start() after it, and Drain() after the server's
// Shutdown (its queues must stay served while the server cancels and drains calls).
class AsyncCallQueues {
 public:
  using CallHandler = std::function<void(std::unique_ptr<AsyncCall>)>;

  AsyncCallQueues(size_t threads, CallHandler on_call);
  ~AsyncCallQueues();

  void AddTo(grpc::ServerBuilder& builder);
  void Start();
  void Drain();

  size_t size() const { return thread_count_; }
  // Runs `task` on queue `index`'s thread, between completions. Only between Start and Drain.
  void Post(size_t index, std::function<void()> task);

 private:
  class Acceptor;
  class PostedTask;

  const size_t thread_count_;
  const CallHandler on_call_;
  grpc::AsyncGenericService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  bool drained_ = false;
};

}  // namespace meridian::xds
