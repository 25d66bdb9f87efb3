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

}  // namespace meridian::testing
