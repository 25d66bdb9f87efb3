#include "controlplane/xds/resource_index.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "controlplane/xds/type_urls.h"
#include "meridian/v1/xds_types.pb.h"

namespace meridian::xds {
namespace {

template <typename Message, typename Spec>
std::string Serialize(const v1::Resource& resource, const Spec& spec) {
  Message message;
  message.set_name(resource.name());
  message.set_environment(resource.environment());
  *message.mutable_labels() = resource.labels();
  message.set_version(resource.version());
  message.set_mod_revision(resource.mod_revision());
  *message.mutable_spec() = spec;
  return message.SerializeAsString();
}

std::string SerializeDomainMessage(const v1::Resource& resource) {
  switch (resource.kind()) {
    case v1::SERVICE:
      return Serialize<v1::Service>(resource, resource.service());
    case v1::ENDPOINT:
      return Serialize<v1::Endpoint>(resource, resource.endpoint());
    case v1::ROUTE:
      return Serialize<v1::Route>(resource, resource.route());
    case v1::CERTIFICATE:
      return Serialize<v1::Certificate>(resource, resource.certificate());
    case v1::CONFIG_ENTRY:
      return Serialize<v1::ConfigEntry>(resource, resource.config_entry());
    default:
      return "";
  }
}

// Collects an update's changes: one IndexChange per (environment, type), each name once with
// the revision it had before the update.
class ChangeCollector {
 public:
  using TypeKey = std::pair<std::string, std::string>;  // (environment, type_url)

  explicit ChangeCollector(IndexUpdate& update) : update_(update) {}

  void Record(const TypeKey& key, const std::string& name, int64_t previous) {
    auto [slot, inserted] = slots_.try_emplace(key, update_.changes.size());
    if (inserted) update_.changes.push_back({key.first, key.second, {}, {}, nullptr});
    if (!recorded_.emplace(slot->second, name).second) return;  // changed earlier in the update
    IndexChange& change = update_.changes[slot->second];
    change.names.push_back(name);
    change.previous.push_back(previous);
  }

 private:
  IndexUpdate& update_;
  absl::flat_hash_map<TypeKey, size_t> slots_;
  absl::flat_hash_set<std::pair<size_t, std::string>> recorded_;
};

int64_t RevisionOf(const XdsEntryPtr& entry) {
  return entry == nullptr ? kAbsentRevision : entry->revision;
}

}  // namespace

XdsEntryPtr ResourceIndex::MakeEntry(const v1::Resource& resource) {
  return MakeXdsEntry(TypeUrlOf(resource.kind()), resource.name(), resource.mod_revision(),
                      SerializeDomainMessage(resource));
}

IndexUpdate ResourceIndex::Reset(const store::StateSnapshot& snapshot) {
  absl::flat_hash_map<TypeKey, Names> entries;
  for (const auto& resource : snapshot.resources) {
    entries[{resource.environment(), TypeUrlOf(resource.kind())}][resource.name()] =
        MakeEntry(resource);
  }
  projection_.Reset(snapshot.resources, snapshot.revision);
  for (ProjectedResource& projected : projection_.Entries()) {
    entries[{projected.environment, projected.type_url}][projected.name] =
        std::move(projected.entry);
  }
  IndexUpdate update;
  ChangeCollector changes(update);
  absl::MutexLock lock(&mu_);
  update.base_revision = revision_;
  update.revision = snapshot.revision;
  for (const auto& [key, names] : entries_) {
    auto now = entries.find(key);
    for (const auto& [name, entry] : names) {
      if (now == entries.end() || !now->second.contains(name)) {
        changes.Record(key, name, entry->revision);
      }
    }
  }
  for (const auto& [key, names] : entries) {
    auto before = entries_.find(key);
    for (const auto& [name, entry] : names) {
      XdsEntryPtr old;
      if (before != entries_.end()) {
        if (auto it = before->second.find(name); it != before->second.end()) old = it->second;
      }
      if (old == nullptr || old->revision != entry->revision ||
          old->resource_bytes != entry->resource_bytes) {
        changes.Record(key, name, RevisionOf(old));
      }
    }
  }
  entries_ = std::move(entries);
  revision_ = snapshot.revision;
  return update;
}

IndexUpdate ResourceIndex::Apply(const std::vector<store::RevisionPtr>& revisions) {
  // Serialize outside the lock; readers only wait for the pointer swaps.
  struct Pending {
    TypeKey key;
    std::string name;
    XdsEntryPtr entry;  // null = removed
  };
  std::vector<Pending> pending;
  int64_t last = 0;
  {
    absl::MutexLock lock(&mu_);
    last = revision_;
  }
  int64_t newest = last;
  for (const auto& record : revisions) {
    if (record->revision() <= last) continue;
    newest = std::max(newest, record->revision());
    for (const auto& change : record->changes()) {
      Pending item{{change.key().environment(), TypeUrlOf(change.key().kind())},
                   change.key().name(), nullptr};
      if (change.operation() == v1::PUT) item.entry = MakeEntry(change.after());
      pending.push_back(std::move(item));
    }
    for (ProjectedResource& projected : projection_.Apply(*record)) {
      pending.push_back({{std::move(projected.environment), std::move(projected.type_url)},
                         std::move(projected.name),
                         std::move(projected.entry)});
    }
  }
  IndexUpdate update;
  update.base_revision = last;
  update.revision = newest;
  ChangeCollector changes(update);
  absl::MutexLock lock(&mu_);
  for (auto& item : pending) {
    Names& names = entries_[item.key];
    auto [slot, inserted] = names.try_emplace(item.name);
    changes.Record(item.key, item.name, inserted ? kAbsentRevision : RevisionOf(slot->second));
    if (item.entry) {
      slot->second = std::move(item.entry);
    } else {
      names.erase(slot);
    }
  }
  revision_ = newest;
  return update;
}

int64_t ResourceIndex::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

XdsEntryPtr ResourceIndex::View::Get(const std::string& environment,
                                     const std::string& type_url,
                                     const std::string& name) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  auto names = index_.entries_.find(TypeKey{environment, type_url});
  if (names == index_.entries_.end()) return nullptr;
  auto entry = names->second.find(name);
  return entry == names->second.end() ? nullptr : entry->second;
}

std::vector<XdsEntryPtr> ResourceIndex::View::List(const std::string& environment,
                                                   const std::string& type_url) const
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::vector<XdsEntryPtr> result;
  auto names = index_.entries_.find(TypeKey{environment, type_url});
  if (names == index_.entries_.end()) return result;
  result.reserve(names->second.size());
  for (const auto& [name, entry] : names->second) result.push_back(entry);
  return result;
}

}  // namespace meridian::xds
