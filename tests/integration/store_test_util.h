#pragma once

#include <memory>
#include <string>

#include "controlplane/store/postgres_config_store.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"
#include "tests/support/resource_builders.h"

namespace meridian::testing {

// A PostgresConfigStore on a fresh database of the shared test server.
inline std::unique_ptr<store::PostgresConfigStore> OpenFreshStore(const std::string& prefix,
                                                                  std::string* url_out = nullptr) {
  auto url = SharedPostgres().CreateDatabase(prefix);
  EXPECT_TRUE(url.ok()) << url.status();
  if (!url.ok()) return nullptr;
  if (url_out != nullptr) *url_out = *url;
  auto store = store::PostgresConfigStore::Open({*url, 4});
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Two stores on one fresh database, as two replicas: each has its own writer and connections.
struct TwoReplicas {
  std::unique_ptr<store::PostgresConfigStore> a;
  std::unique_ptr<store::PostgresConfigStore> b;
  std::string url;
  bool ok() const { return a != nullptr && b != nullptr; }
};

inline TwoReplicas OpenTwoReplicas(const std::string& prefix) {
  TwoReplicas replicas;
  replicas.a = OpenFreshStore(prefix, &replicas.url);
  if (replicas.a == nullptr) return replicas;
  auto b = store::PostgresConfigStore::Open({replicas.url, 4});
  EXPECT_TRUE(b.ok()) << b.status();
  if (b.ok()) replicas.b = std::move(*b);
  return replicas;
}

}  // namespace meridian::testing
