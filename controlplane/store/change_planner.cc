#include "controlplane/store/change_planner.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"

namespace meridian::store {
namespace {

// A certificate's private key is write-only, so clients that read-modify-write a certificate
// never have it: an update without a key keeps the stored one.
void KeepStoredPrivateKey(const v1::Resource* current, v1::Resource& next) {
  if (current == nullptr || !current->has_certificate()) return;
  next.mutable_certificate()->set_private_key(current->certificate().private_key());
}

}  // namespace

ChangePlanner::ChangePlanner(int64_t base_revision,
                             absl::flat_hash_map<ResourceKey, v1::Resource> loaded)
    : revision_(base_revision), loaded_(std::move(loaded)) {}

std::vector<ResourceKey> ChangePlanner::KeysToLoad(
    const std::vector<const ChangeSet*>& change_sets) {
  absl::flat_hash_set<ResourceKey> keys;
  for (const ChangeSet* change_set : change_sets) {
    for (const Mutation& mutation : change_set->mutations) {
      keys.insert(mutation.key);
      if (mutation.operation != Mutation::Operation::kPut || !mutation.resource.has_route()) {
        continue;
      }
      for (const auto& rule : mutation.resource.route().rules()) {
        for (const auto& destination : rule.destinations()) {
          keys.insert({v1::SERVICE, mutation.key.environment, destination.service()});
        }
      }
    }
  }
  return {keys.begin(), keys.end()};
}

std::vector<ResourceKey> ChangePlanner::DeletedServices(
    const std::vector<const ChangeSet*>& change_sets) {
  std::vector<ResourceKey> services;
  for (const ChangeSet* change_set : change_sets) {
    for (const Mutation& mutation : change_set->mutations) {
      if (mutation.operation == Mutation::Operation::kDelete && mutation.key.kind == v1::SERVICE) {
        services.push_back(mutation.key);
      }
    }
  }
  return services;
}

std::vector<std::string> ChangePlanner::ReferencedServices(const v1::Resource& route) {
  absl::flat_hash_set<std::string> seen;
  std::vector<std::string> services;
  for (const auto& rule : route.route().rules()) {
    for (const auto& destination : rule.destinations()) {
      if (seen.insert(destination.service()).second) services.push_back(destination.service());
    }
  }
  return services;
}

const v1::Resource* ChangePlanner::Lookup(const ResourceKey& key, const Staged& staged) const {
  if (auto it = staged.find(key); it != staged.end()) {
    return it->second ? &*it->second : nullptr;
  }
  if (auto it = written_.find(key); it != written_.end()) {
    return it->second ? &*it->second : nullptr;
  }
  auto it = loaded_.find(key);
  return it == loaded_.end() ? nullptr : &it->second;
}

absl::Status ChangePlanner::CheckNotReferenced(const ResourceKey& service,
                                               const Staged& staged) const {
  // Every route that could reference the service was loaded; judge each by its newest state.
  absl::flat_hash_set<ResourceKey> routes;
  for (const auto* states : {&staged, &written_}) {
    for (const auto& [key, state] : *states) {
      if (key.kind == v1::ROUTE && key.environment == service.environment) routes.insert(key);
    }
  }
  for (const auto& [key, state] : loaded_) {
    if (key.kind == v1::ROUTE && key.environment == service.environment) routes.insert(key);
  }
  for (const ResourceKey& key : routes) {
    const v1::Resource* route = Lookup(key, staged);
    if (route == nullptr) continue;
    for (const std::string& referenced : ReferencedServices(*route)) {
      if (referenced == service.name) {
        return absl::FailedPreconditionError(
            absl::StrCat(service.ToString(), ": still referenced by route \"", key.name,
                         "\"; change or delete the route first (or in the same change set)"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ChangePlanner::CheckRouteReferences(const v1::Resource& route,
                                                 const Staged& staged) const {
  const auto& rules = route.route().rules();
  for (int i = 0; i < rules.size(); ++i) {
    for (int j = 0; j < rules[i].destinations_size(); ++j) {
      const std::string& service = rules[i].destinations(j).service();
      if (Lookup({v1::SERVICE, route.environment(), service}, staged) == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            "spec.rules[", i, "].destinations[", j, "].service: service \"", service,
            "\" does not exist in environment \"", route.environment(), "\""));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<v1::RevisionRecord> ChangePlanner::ToRevisionRecords(int64_t commit_unix_micros) const {
  std::vector<v1::RevisionRecord> records;
  auto change = changes_.begin();
  for (const PlannedRevision& planned : revisions_) {
    v1::RevisionRecord& record = records.emplace_back();
    record.set_revision(planned.revision);
    record.mutable_time()->set_seconds(commit_unix_micros / 1000000);
    record.mutable_time()->set_nanos(static_cast<int32_t>(commit_unix_micros % 1000000) * 1000);
    record.set_actor(planned.actor);
    record.set_comment(planned.comment);
    record.set_rollback_to(planned.rollback_to);
    for (; change != changes_.end() && change->revision == planned.revision; ++change) {
      v1::ChangeRecord& out = *record.add_changes();
      out.set_revision(change->revision);
      out.set_operation(change->operation);
      out.mutable_key()->set_kind(change->key.kind);
      out.mutable_key()->set_environment(change->key.environment);
      out.mutable_key()->set_name(change->key.name);
      if (change->before) *out.mutable_before() = *change->before;
      if (change->after) *out.mutable_after() = *change->after;
    }
  }
  return records;
}

absl::StatusOr<CommitResult> ChangePlanner::Apply(const ChangeSet& change_set) {
  if (change_set.mutations.empty()) {
    return absl::InvalidArgumentError("changes: a change set needs at least one change");
  }
  const int64_t revision = revision_ + 1;
  Staged staged;
  std::vector<PlannedChange> planned;
  CommitResult result{revision, {}};
  for (const Mutation& mutation : change_set.mutations) {
    const std::string where = mutation.key.ToString();
    if (staged.contains(mutation.key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": appears twice in one change set"));
    }
    const v1::Resource* current = Lookup(mutation.key, staged);
    if (mutation.expected_version > 0) {
      if (current == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, ": expected version ", mutation.expected_version, " but it does not exist"));
      }
      if (current->version() != mutation.expected_version) {
        return absl::FailedPreconditionError(
            absl::StrCat(where, ": version mismatch: expected ", mutation.expected_version,
                         ", current ", current->version()));
      }
    }
    PlannedChange change{revision, static_cast<int32_t>(planned.size()), mutation.key,
                         v1::PUT, std::nullopt, std::nullopt};
    if (current != nullptr) change.before = *current;
    if (mutation.operation == Mutation::Operation::kDelete) {
      if (current == nullptr) return absl::NotFoundError(absl::StrCat(where, ": not found"));
      change.operation = v1::DELETE;
      staged[mutation.key] = std::nullopt;
    } else {
      if (mutation.create_only && current != nullptr) {
        return absl::AlreadyExistsError(absl::StrCat(where, ": already exists (version ",
                                                     current->version(), ")"));
      }
      v1::Resource next = mutation.resource;
      next.set_kind(mutation.key.kind);
      next.set_environment(mutation.key.environment);
      next.set_name(mutation.key.name);
      if (next.kind() == v1::CERTIFICATE && next.certificate().private_key().empty()) {
        // The store could not check this certificate before it knew the stored key.
        KeepStoredPrivateKey(current, next);
        MERIDIAN_RETURN_IF_ERROR(model::NormalizeResource(next));
        MERIDIAN_RETURN_IF_ERROR(model::ValidateResource(next));
      }
      next.set_version(current ? current->version() + 1 : 1);
      next.set_create_revision(current ? current->create_revision() : revision);
      next.set_mod_revision(revision);
      change.after = next;
      result.resources.push_back(next);
      staged[mutation.key] = std::move(next);
    }
    planned.push_back(std::move(change));
  }
  for (const auto& [key, state] : staged) {
    if (state && state->has_route()) MERIDIAN_RETURN_IF_ERROR(CheckRouteReferences(*state, staged));
    if (!state && key.kind == v1::SERVICE) MERIDIAN_RETURN_IF_ERROR(CheckNotReferenced(key, staged));
  }
  revision_ = revision;
  for (auto& [key, state] : staged) written_[key] = std::move(state);
  for (auto& change : planned) changes_.push_back(std::move(change));
  revisions_.push_back({revision, change_set.actor, change_set.comment, change_set.rollback_to});
  return result;
}

}  // namespace meridian::store
