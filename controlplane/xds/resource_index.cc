#include "controlplane/xds/resource_index.h"

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

}  // namespace

XdsEntryPtr ResourceIndex::MakeEntry(const v1::Resource& resource) {
  return MakeXdsEntry(TypeUrlOf(resource.kind()), resource.name(), resource.mod_revision(),
                      SerializeDomainMessage(resource));
}

void ResourceIndex::Reset(const store::StateSnapshot& snapshot) {
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
  absl::MutexLock lock(&mu_);
  entries_ = std::move(entries);
  revision_ = snapshot.revision;
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
  absl::flat_hash_map<TypeKey, size_t> change_slot;
  absl::MutexLock lock(&mu_);
  for (auto& item : pending) {
    Names& names = entries_[item.key];
    if (item.entry) {
      names[item.name] = std::move(item.entry);
    } else {
      names.erase(item.name);
    }
    auto [slot, inserted] = change_slot.try_emplace(item.key, update.changes.size());
    if (inserted) update.changes.push_back({item.key.first, item.key.second, {}, false, nullptr});
    update.changes[slot->second].names.push_back(item.name);
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
