#pragma once

// A ProxyDriver for agent tests: records every snapshot it is given, and rejects the ones a
// test-supplied check objects to, the way a proxy refuses a config it cannot load.
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/driver/proxy_driver.h"

namespace meridian::testing {

class FakeProxyDriver : public agent::ProxyDriver {
 public:
  // Returns the rejection message for a snapshot, or "" to accept it.
  using Check = std::function<std::string(const agent::ProxySnapshot&)>;

  absl::Status Start(const agent::ProxySnapshot& snapshot) override {
    absl::MutexLock lock(&mu_);
    started_.push_back(snapshot);
    if (!start_error_.ok()) return start_error_;
    running_ = true;
    current_ = snapshot;
    return absl::OkStatus();
  }
  absl::Status Apply(const agent::ProxySnapshot& snapshot) override {
    absl::MutexLock lock(&mu_);
    if (check_) {
      if (std::string error = check_(snapshot); !error.empty()) {
        rejected_.push_back(snapshot);
        return absl::InvalidArgumentError(error);
      }
    }
    applied_.push_back(snapshot);
    current_ = snapshot;
    return absl::OkStatus();
  }
  agent::ApplyMode last_apply_mode() const override { return agent::ApplyMode::kReload; }
  absl::Status Stop() override {
    absl::MutexLock lock(&mu_);
    running_ = false;
    ++stops_;
    return absl::OkStatus();
  }

  void RejectWhen(Check check) {
    absl::MutexLock lock(&mu_);
    check_ = std::move(check);
  }
  void FailStart(absl::Status error) {
    absl::MutexLock lock(&mu_);
    start_error_ = std::move(error);
  }

  // Waits (bounded) until the snapshot the proxy runs satisfies `done`; returns whether it did.
  bool WaitUntil(const std::function<bool(const agent::ProxySnapshot&)>& done,
                 absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    struct Args {
      FakeProxyDriver* self;
      const std::function<bool(const agent::ProxySnapshot&)>* done;
    } args{this, &done};
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return (*a->done)(a->self->current_); },
            &args),
        timeout);
  }
  // Waits (bounded) until at least `count` snapshots were rejected.
  bool WaitForRejections(size_t count, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    struct Args {
      FakeProxyDriver* self;
      size_t count;
    } args{this, count};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      return a->self->rejected_.size() >= a->count;
                                    },
                                    &args),
                                timeout);
  }

  agent::ProxySnapshot current() {
    absl::MutexLock lock(&mu_);
    return current_;
  }
  std::vector<agent::ProxySnapshot> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  std::vector<agent::ProxySnapshot> applied() {
    absl::MutexLock lock(&mu_);
    return applied_;
  }
  std::vector<agent::ProxySnapshot> rejected() {
    absl::MutexLock lock(&mu_);
    return rejected_;
  }
  bool running() {
    absl::MutexLock lock(&mu_);
    return running_;
  }
  int stops() {
    absl::MutexLock lock(&mu_);
    return stops_;
  }

 private:
  absl::Mutex mu_;
  Check check_ ABSL_GUARDED_BY(mu_);
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  int stops_ ABSL_GUARDED_BY(mu_) = 0;
  agent::ProxySnapshot current_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::ProxySnapshot> started_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::ProxySnapshot> applied_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::ProxySnapshot> rejected_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::testing
