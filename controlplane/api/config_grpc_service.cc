#include "controlplane/api/config_grpc_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/api/status_mapping.h"
#include "controlplane/api/watch_start.h"
#include "controlplane/model/redaction.h"

namespace meridian::api {
namespace {

constexpr int32_t kDefaultPageSize = 100;
constexpr int32_t kDefaultHistoryLimit = 100;

std::string ActorOf(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("x-meridian-actor");
  if (it == metadata.end() || it->second.empty()) return "anonymous";
  return std::string(it->second.data(), it->second.size());
}

model::ResourceKey KeyFromProto(const v1::ResourceKey& key) {
  return {key.kind(), key.environment(), key.name()};
}

store::Mutation PutMutation(const v1::Resource& resource, int64_t expected_version,
                            bool create_only) {
  store::Mutation mutation;
  mutation.operation = store::Mutation::Operation::kPut;
  mutation.key = model::KeyOf(resource);
  mutation.resource = resource;
  mutation.expected_version = expected_version;
  mutation.create_only = create_only;
  return mutation;
}

void FillWriteResponse(store::CommitResult result, v1::WriteResponse& response) {
  response.set_revision(result.revision);
  for (auto& resource : result.resources) {
    model::RedactSecrets(resource);
    *response.add_resources() = std::move(resource);
  }
}

grpc::Status Commit(store::ConfigStore& store, store::ChangeSet change_set,
                    v1::WriteResponse& response) {
  auto result = store.Commit(std::move(change_set));
  if (!result.ok()) return ToGrpcStatus(result.status());
  FillWriteResponse(*std::move(result), response);
  return grpc::Status::OK;
}

bool WatchMatches(const v1::WatchRequest& request, const v1::ChangeRecord& change) {
  return (request.environment().empty() || change.key().environment() == request.environment()) &&
         (request.kind() == v1::KIND_UNSPECIFIED || change.key().kind() == request.kind());
}

}  // namespace

ConfigGrpcService::ConfigGrpcService(store::ConfigStore& store, store::ChangeFeed& feed,
                                     absl::Duration watch_poll_interval)
    : store_(store), feed_(feed), watch_poll_interval_(watch_poll_interval) {}

grpc::Status ConfigGrpcService::GetResource(grpc::ServerContext*,
                                            const v1::GetResourceRequest* request,
                                            v1::Resource* response) {
  auto resource = store_.Get(KeyFromProto(request->key()), request->at_revision());
  if (!resource.ok()) return ToGrpcStatus(resource.status());
  *response = *std::move(resource);
  model::RedactSecrets(*response);
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::ListResources(grpc::ServerContext*,
                                              const v1::ListResourcesRequest* request,
                                              v1::ListResourcesResponse* response) {
  store::ListQuery query;
  query.kind = request->kind();
  query.environment = request->environment();
  query.label_selector = request->label_selector();
  query.page_size = request->page_size() > 0 ? request->page_size() : kDefaultPageSize;
  query.page_token = request->page_token();
  query.at_revision = request->at_revision();
  auto list = store_.List(query);
  if (!list.ok()) return ToGrpcStatus(list.status());
  for (auto& resource : list->resources) {
    model::RedactSecrets(resource);
    *response->add_resources() = std::move(resource);
  }
  response->set_next_page_token(list->next_page_token);
  response->set_revision(list->revision);
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::PutResource(grpc::ServerContext* context,
                                            const v1::PutResourceRequest* request,
                                            v1::WriteResponse* response) {
  store::ChangeSet change_set;
  change_set.actor = ActorOf(*context);
  change_set.comment = request->comment();
  change_set.mutations.push_back(
      PutMutation(request->resource(), request->expected_version(), request->create_only()));
  return Commit(store_, std::move(change_set), *response);
}

grpc::Status ConfigGrpcService::DeleteResource(grpc::ServerContext* context,
                                               const v1::DeleteResourceRequest* request,
                                               v1::WriteResponse* response) {
  store::ChangeSet change_set;
  change_set.actor = ActorOf(*context);
  change_set.comment = request->comment();
  store::Mutation mutation;
  mutation.operation = store::Mutation::Operation::kDelete;
  mutation.key = KeyFromProto(request->key());
  mutation.expected_version = request->expected_version();
  change_set.mutations.push_back(std::move(mutation));
  return Commit(store_, std::move(change_set), *response);
}

grpc::Status ConfigGrpcService::ApplyChanges(grpc::ServerContext* context,
                                             const v1::ApplyChangesRequest* request,
                                             v1::WriteResponse* response) {
  store::ChangeSet change_set;
  change_set.actor = ActorOf(*context);
  change_set.comment = request->comment();
  for (int i = 0; i < request->changes_size(); ++i) {
    const v1::Change& change = request->changes(i);
    switch (change.change_case()) {
      case v1::Change::kPut:
        change_set.mutations.push_back(
            PutMutation(change.put(), change.expected_version(), change.create_only()));
        break;
      case v1::Change::kDelete: {
        store::Mutation mutation;
        mutation.operation = store::Mutation::Operation::kDelete;
        mutation.key = KeyFromProto(change.delete_());
        mutation.expected_version = change.expected_version();
        change_set.mutations.push_back(std::move(mutation));
        break;
      }
      case v1::Change::CHANGE_NOT_SET:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("changes[", i, "]: one of put or delete is required"));
    }
  }
  return Commit(store_, std::move(change_set), *response);
}

grpc::Status ConfigGrpcService::GetHistory(grpc::ServerContext*,
                                           const v1::GetHistoryRequest* request,
                                           v1::GetHistoryResponse* response) {
  store::HistoryQuery query;
  query.environment = request->environment();
  query.kind = request->kind();
  query.name = request->name();
  query.since_revision = request->since_revision();
  query.limit = request->limit() > 0 ? request->limit() : kDefaultHistoryLimit;
  query.newest = request->newest();
  auto entries = store_.History(query);
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  for (auto& entry : *entries) {
    model::RedactSecrets(*entry.mutable_change());
    *response->add_entries() = std::move(entry);
  }
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::GetRevision(grpc::ServerContext*,
                                            const v1::GetRevisionRequest* request,
                                            v1::RevisionRecord* response) {
  auto record = store_.GetRevision(request->revision());
  if (!record.ok()) return ToGrpcStatus(record.status());
  *response = *std::move(record);
  model::RedactSecrets(*response);
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::Diff(grpc::ServerContext*, const v1::DiffRequest* request,
                                     v1::DiffResponse* response) {
  auto changes =
      store_.Diff(request->from_revision(), request->to_revision(), request->environment());
  if (!changes.ok()) return ToGrpcStatus(changes.status());
  for (auto& change : *changes) {
    model::RedactSecrets(change);
    *response->add_changes() = std::move(change);
  }
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::Rollback(grpc::ServerContext* context,
                                         const v1::RollbackRequest* request,
                                         v1::WriteResponse* response) {
  store::RollbackSpec spec;
  spec.to_revision = request->to_revision();
  spec.environment = request->environment();
  spec.kind = request->kind();
  spec.name = request->name();
  spec.actor = ActorOf(*context);
  spec.comment = request->comment();
  auto result = store_.Rollback(spec);
  if (!result.ok()) return ToGrpcStatus(result.status());
  FillWriteResponse(*std::move(result), *response);
  return grpc::Status::OK;
}

grpc::Status ConfigGrpcService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                      grpc::ServerWriter<v1::WatchEvent>* writer) {
  int64_t after = request->since_revision();
  // A compacted since_revision fails before the stream starts.
  if (absl::Status status = CheckWatchStart(store_, after); !status.ok()) {
    return ToGrpcStatus(status);
  }
  auto batch = feed_.WaitForRevisions(after, absl::ZeroDuration());
  if (!batch.ok()) return ToGrpcStatus(batch.status());
  // Tell the client the watch is established even if nothing happens for a while.
  writer->SendInitialMetadata();
  while (!context->IsCancelled()) {
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
    for (const store::RevisionPtr& revision : *batch) {
      for (const v1::ChangeRecord& change : revision->changes()) {
        if (!WatchMatches(*request, change)) continue;
        v1::WatchEvent event;
        event.set_revision(revision->revision());
        *event.mutable_time() = revision->time();
        event.set_actor(revision->actor());
        event.set_comment(revision->comment());
        *event.mutable_change() = change;
        model::RedactSecrets(*event.mutable_change());
        if (!writer->Write(event)) return grpc::Status::CANCELLED;
      }
      after = revision->revision();
    }
    // Bounded waits so cancellation and server shutdown are noticed within one interval.
    batch = feed_.WaitForRevisions(after, watch_poll_interval_);
    if (!batch.ok()) return ToGrpcStatus(batch.status());
  }
  return grpc::Status::CANCELLED;
}

}  // namespace meridian::api
