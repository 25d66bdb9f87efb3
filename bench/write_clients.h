#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::bench {

// The payload every write carries: a small Service resource (ports, load balancing, health
// check, circuit breaker, labels) of about 200 bytes serialized, in environment `bench`.
v1::Resource BenchResource(const std::string& name);

// One client's connection to a store under test. A write returns once the store has
// acknowledged it durably. Not thread-safe: each load thread owns its own client (and so its
// own channel and TCP connection).
class WriteClient {
 public:
  virtual ~WriteClient() = default;

  // Writes one resource as its own change.
  virtual absl::Status Put(const v1::Resource& resource) = 0;

  // Writes all the resources as one atomic change.
  virtual absl::Status PutBatch(const std::vector<v1::Resource>& resources) = 0;
};

// Meridian's ConfigService: PutResource for a single write, ApplyChanges for a batch.
absl::StatusOr<std::unique_ptr<WriteClient>> ConnectMeridian(const std::string& target);

// etcd's KV service: Put of the serialized resource to /bench/<name> for a single write, one
// Txn of puts for a batch (the server needs --max-txn-ops at least the batch size).
absl::StatusOr<std::unique_ptr<WriteClient>> ConnectEtcd(const std::string& target);

}  // namespace meridian::bench
