#pragma once

#include <pqxx/pqxx>
#include <string>

#include "absl/status/statusor.h"
#include "controlplane/model/resource_key.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::store {

// Rows store a resource as its serialized protobuf (bytea); these helpers convert between
// SQL values and domain values.

inline v1::Resource ParseResourceBlob(const pqxx::field& field) {
  v1::Resource resource;
  if (!field.is_null()) {
    pqxx::binarystring blob(field);
    resource.ParseFromArray(blob.data(), static_cast<int>(blob.size()));
  }
  return resource;
}

inline std::string QuoteResourceBlob(pqxx::transaction_base& txn, const v1::Resource& resource) {
  const std::string bytes = resource.SerializeAsString();
  return txn.quote_raw(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

// "('prod','services','checkout')": the (environment, kind, name) primary key as a row value.
inline std::string QuoteKeyRow(pqxx::transaction_base& txn, const model::ResourceKey& key) {
  std::string row = "(";
  row += txn.quote(key.environment);
  row += ",";
  row += txn.quote(std::string(model::KindPlural(key.kind)));
  row += ",";
  row += txn.quote(key.name);
  row += ")";
  return row;
}

}  // namespace meridian::store
