// The agent's on-disk snapshot: round trip, permissions, atomic replacement, refusals.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agent/snapshot_store.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/unit/agent_xds_test_util.h"

namespace meridian::agent {
namespace {

using ::meridian::testing::AgentEndpoint;
using ::meridian::testing::AgentService;

class SnapshotStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "agent-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static AppliedState SampleState() {
    AppliedState state;
    state.snapshot.revision = 42;
    state.snapshot.services["checkout"] = AgentService("checkout", 40);
    state.snapshot.endpoints["checkout-1"] = AgentEndpoint("checkout-1", "checkout", 41);
    v1::Route route;
    route.set_name("shop");
    route.set_environment("prod");
    route.mutable_spec()->add_hosts("shop.example.com");
    state.snapshot.routes["shop"] = route;
    v1::Certificate certificate;
    certificate.set_name("shop-tls");
    certificate.set_environment("prod");
    certificate.mutable_spec()->set_private_key("-----BEGIN PRIVATE KEY-----\n...");
    state.snapshot.certificates["shop-tls"] = certificate;
    state.versions[kServiceTypeUrl]["checkout"] = "40";
    state.versions[kEndpointTypeUrl]["checkout-1"] = "41";
    state.versions[kRouteTypeUrl]["shop"] = "42";
    state.versions[kCertificateTypeUrl]["shop-tls"] = "39";
    return state;
  }

  std::string dir_;
};

template <typename Message>
void ExpectSameMaps(const std::map<std::string, Message>& a,
                    const std::map<std::string, Message>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, message] : a) {
    ASSERT_TRUE(b.contains(name)) << name;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(message, b.at(name))) << name;
  }
}

TEST_F(SnapshotStoreTest, LoadsWhatWasSaved) {
  SnapshotStore store(dir_, "prod", "node-1");
  const AppliedState saved = SampleState();
  ASSERT_TRUE(store.Save(saved).ok());
  auto loaded = SnapshotStore(dir_, "prod", "node-1").Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->snapshot.revision, 42);
  ExpectSameMaps(loaded->snapshot.services, saved.snapshot.services);
  ExpectSameMaps(loaded->snapshot.endpoints, saved.snapshot.endpoints);
  ExpectSameMaps(loaded->snapshot.routes, saved.snapshot.routes);
  ExpectSameMaps(loaded->snapshot.certificates, saved.snapshot.certificates);
  EXPECT_EQ(loaded->versions, saved.versions);
}

TEST_F(SnapshotStoreTest, FileIsOwnerReadWriteOnlyAndNoTemporaryIsLeft) {
  const mode_t old_umask = ::umask(0);  // even a permissive umask must not widen it
  SnapshotStore store(dir_, "prod", "node-1");
  ASSERT_TRUE(store.Save(SampleState()).ok());
  ::umask(old_umask);
  struct stat info {};
  ASSERT_EQ(::stat(store.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  EXPECT_EQ(store.path(), dir_ + "/snapshot.pb");
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "snapshot.pb");
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(SnapshotStoreTest, SaveReplacesTheWholeFileEvenOverAStaleWideTemporary) {
  SnapshotStore store(dir_, "prod", "node-1");
  ASSERT_TRUE(store.Save(SampleState()).ok());
  // A temporary left by a crash, world-readable: it must not keep its mode.
  std::ofstream(store.path() + ".tmp") << "garbage";
  ::chmod((store.path() + ".tmp").c_str(), 0644);
  AppliedState smaller;
  smaller.snapshot.revision = 43;
  smaller.snapshot.services["only"] = AgentService("only", 43);
  smaller.versions[kServiceTypeUrl]["only"] = "43";
  ASSERT_TRUE(store.Save(smaller).ok());
  struct stat info {};
  ASSERT_EQ(::stat(store.path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->snapshot.revision, 43);
  EXPECT_EQ(loaded->snapshot.services.size(), 1u);
  EXPECT_TRUE(loaded->snapshot.endpoints.empty());
  EXPECT_FALSE(std::filesystem::exists(store.path() + ".tmp"));
}

TEST_F(SnapshotStoreTest, NothingSavedIsNotFound) {
  EXPECT_EQ(SnapshotStore(dir_, "prod", "node-1").Load().status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SnapshotStoreTest, CorruptFileIsDataLoss) {
  std::ofstream(dir_ + "/snapshot.pb") << "\xff\xff\xff not a proto";
  EXPECT_EQ(SnapshotStore(dir_, "prod", "node-1").Load().status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(SnapshotStoreTest, AnotherEnvironmentsSnapshotIsRefused) {
  ASSERT_TRUE(SnapshotStore(dir_, "staging", "node-1").Save(SampleState()).ok());
  auto loaded = SnapshotStore(dir_, "prod", "node-1").Load();
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("staging"), std::string::npos);
}

TEST_F(SnapshotStoreTest, UnwritableDirectoryIsAnErrorAndKeepsTheOldFile) {
  SnapshotStore store(dir_, "prod", "node-1");
  ASSERT_TRUE(store.Save(SampleState()).ok());
  SnapshotStore missing(dir_ + "/does-not-exist", "prod", "node-1");
  EXPECT_FALSE(missing.Save(SampleState()).ok());
  EXPECT_TRUE(store.Load().ok());
}

}  // namespace
}  // namespace meridian::agent
