#include "controlplane/store/change_feed.h"

#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "controlplane/store/pg_connection_pool.h"
#include "spdlog/spdlog.h"

namespace meridian::store {
namespace {

constexpr char kChannel[] = "meridian_changes";
constexpr int32_t kCatchUpBatch = 256;

// Hands every notification's payload (the committed revision, as the store sends it) to
// `wake`.
class WakeOnNotify : public pqxx::notification_receiver {
 public:
  WakeOnNotify(pqxx::connection_base& connection, std::function<void(const std::string&)> wake)
      : pqxx::notification_receiver(connection, kChannel), wake_(std::move(wake)) {}
  void operator()(const std::string& payload, int) override { wake_(payload); }

 private:
  std::function<void(const std::string&)> wake_;
};

}  // namespace

ChangeFeed::ChangeFeed(ConfigStore& store, Options options)
    : store_(store), options_(std::move(options)) {}

ChangeFeed::~ChangeFeed() { Stop(); }

absl::Status ChangeFeed::Start() {
  auto revisions = store_.Revisions();
  if (!revisions.ok()) return revisions.status();
  {
    absl::MutexLock lock(&mu_);
    latest_ = revisions->current;
  }
  store_.SetCommitListener(
      [this](std::vector<v1::RevisionRecord> revisions) { Publish(std::move(revisions)); });
  follower_ = std::thread([this] { FollowLoop(); });
  if (!options_.listen_database_url.empty()) listener_ = std::thread([this] { ListenLoop(); });
  return absl::OkStatus();
}

void ChangeFeed::Stop() {
  store_.SetCommitListener(nullptr);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (follower_.joinable()) follower_.join();
  if (listener_.joinable()) listener_.join();
}

int64_t ChangeFeed::LatestRevision() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

absl::Status ChangeFeed::CatchUp() {
  while (true) {
    int64_t after = LatestRevision();
    auto records = store_.ReadChangeLog(after, kCatchUpBatch);
    if (!records.ok()) {
      if (absl::IsOutOfRange(records.status())) {
        // Compacted past what we hold: nothing to replay, jump to the present.
        auto revisions = store_.Revisions();
        if (!revisions.ok()) return revisions.status();
        absl::MutexLock lock(&mu_);
        latest_ = std::max(latest_, revisions->current);
        recent_.clear();
        return absl::OkStatus();
      }
      return records.status();
    }
    if (records->empty()) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    for (auto& record : *records) {
      if (record.revision() > latest_) Append(std::move(record));
    }
    if (records->size() < static_cast<size_t>(kCatchUpBatch)) return absl::OkStatus();
  }
}

void ChangeFeed::Append(v1::RevisionRecord record) {
  latest_ = record.revision();
  recent_.push_back(std::make_shared<const v1::RevisionRecord>(std::move(record)));
  if (recent_.size() > options_.retained_revisions) recent_.pop_front();
}

void ChangeFeed::Publish(std::vector<v1::RevisionRecord> revisions) {
  absl::MutexLock lock(&mu_);
  for (auto& record : revisions) {
    if (record.revision() <= latest_) continue;
    if (record.revision() != latest_ + 1) {
      Wake(kUnknownRevision);  // another replica committed in between: read the log
      return;
    }
    Append(std::move(record));
  }
}

void ChangeFeed::Wake(int64_t revision) {
  // The payload only ever saves a read: a revision the feed holds needs none, and a forged
  // or garbled one asks for more than is there, which reads the log as before.
  if (revision <= latest_) return;
  wanted_ = std::max(wanted_, revision);
  poke_ = true;
}

void ChangeFeed::FollowLoop() {
  absl::Status last_error;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](ChangeFeed* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return self->stopping_ || self->poke_;
                               },
                               this),
                           listening_ ? options_.listening_poll_interval : options_.poll_interval);
      if (stopping_) return;
      if (poke_ && wanted_ != kUnknownRevision) {
        // PostgreSQL signals listeners while it commits, so this process's own commit often
        // wakes the feed just before the writer hands it over: give Publish a moment rather
        // than read back what it is about to deliver.
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](ChangeFeed* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return self->stopping_ || self->latest_ >= self->wanted_;
                                 },
                                 this),
                             options_.publish_grace);
        if (stopping_) return;
      }
      // Woken for revisions this process committed and Publish delivered: nothing to read.
      const bool already_held = poke_ && latest_ >= wanted_;
      poke_ = false;
      wanted_ = 0;
      if (already_held) continue;
    }
    absl::Status status = CatchUp();
    if (!status.ok() && status.ToString() != last_error.ToString()) {
      spdlog::warn("change feed cannot read the change log: {}", status.ToString());
    }
    last_error = status;
  }
}

void ChangeFeed::ListenLoop() {
  auto wake = [this](const std::string& payload) {
    int64_t revision = 0;
    if (!absl::SimpleAtoi(payload, &revision)) revision = kUnknownRevision;
    absl::MutexLock lock(&mu_);
    Wake(revision);
  };
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    try {
      pqxx::connection connection(options_.listen_database_url);
      WakeOnNotify receiver(connection, wake);
      {
        absl::MutexLock lock(&mu_);
        listening_ = true;
        Wake(kUnknownRevision);  // anything committed while we were not listening
      }
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          if (stopping_) return;
        }
        connection.await_notification(0, 200000);
      }
    } catch (const std::exception& e) {
      spdlog::debug("change feed listener reconnecting: {}", e.what());
    }
    absl::MutexLock lock(&mu_);
    listening_ = false;
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1));
  }
}

absl::StatusOr<std::vector<RevisionPtr>> ChangeFeed::WaitForRevisions(int64_t after_revision,
                                                                      absl::Duration timeout,
                                                                      size_t max_revisions) {
  {
    absl::MutexLock lock(&mu_);
    struct Args {
      ChangeFeed* self;
      int64_t after;
    } args{this, after_revision};
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               return a->self->stopping_ || a->self->latest_ > a->after;
                             },
                             &args),
                         timeout);
    const bool in_memory = after_revision >= latest_ ||
                           (!recent_.empty() && after_revision + 1 >= recent_.front()->revision());
    if (in_memory) {
      std::vector<RevisionPtr> result;
      auto first = std::upper_bound(recent_.begin(), recent_.end(), after_revision,
                                    [](int64_t revision, const RevisionPtr& record) {
                                      return revision < record->revision();
                                    });
      for (auto it = first; it != recent_.end() && result.size() < max_revisions; ++it) {
        result.push_back(*it);
      }
      return result;
    }
  }
  // Older than what we keep in memory: read it from the change log.
  auto records = store_.ReadChangeLog(after_revision, static_cast<int32_t>(max_revisions));
  if (!records.ok()) return records.status();
  std::vector<RevisionPtr> result;
  for (auto& record : *records) {
    result.push_back(std::make_shared<const v1::RevisionRecord>(std::move(record)));
  }
  return result;
}

}  // namespace meridian::store
