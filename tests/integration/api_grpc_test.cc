// The gRPC API end to end: real channel, real control plane, real PostgreSQL.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "tests/integration/control_plane_fixture.h"
#include "tests/support/resource_builders.h"

namespace meridian::testing {
namespace {

class GrpcApiTest : public ControlPlaneTest {
 protected:
  std::unique_ptr<grpc::ClientContext> Context(const std::string& actor = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!actor.empty()) context->AddMetadata("x-meridian-actor", actor);
    return context;
  }

  grpc::Status PutResource(const v1::Resource& resource, v1::WriteResponse* response,
                           int64_t expected_version = 0, const std::string& actor = "") {
    v1::PutResourceRequest request;
    *request.mutable_resource() = resource;
    request.set_expected_version(expected_version);
    request.set_comment("test");
    return stub_->PutResource(Context(actor).get(), request, response);
  }

  v1::Resource Get(const std::string& name, grpc::Status* status = nullptr) {
    v1::GetResourceRequest request;
    request.mutable_key()->set_kind(v1::SERVICE);
    request.mutable_key()->set_environment("prod");
    request.mutable_key()->set_name(name);
    v1::Resource resource;
    grpc::Status result = stub_->GetResource(Context().get(), request, &resource);
    if (status != nullptr) *status = result;
    return resource;
  }

  int64_t Revision() {
    v1::ListResourcesRequest request;
    request.set_environment("prod");
    v1::ListResourcesResponse response;
    EXPECT_TRUE(stub_->ListResources(Context().get(), request, &response).ok());
    return response.revision();
  }
};

TEST_F(GrpcApiTest, PutsGetsListsAndDeletes) {
  v1::WriteResponse written;
  ASSERT_TRUE(PutResource(ServiceResource("prod", "checkout"), &written, 0, "alice").ok());
  ASSERT_EQ(written.resources_size(), 1);
  EXPECT_EQ(written.resources(0).version(), 1);
  EXPECT_EQ(written.resources(0).create_revision(), written.revision());
  ASSERT_TRUE(PutResource(ServiceResource("prod", "cart", 9090), &written).ok());

  grpc::Status status;
  v1::Resource checkout = Get("checkout", &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(checkout.service().ports(0).port(), 8080u);

  v1::ListResourcesRequest list_request;
  list_request.set_kind(v1::SERVICE);
  list_request.set_environment("prod");
  list_request.set_page_size(1);
  v1::ListResourcesResponse page;
  ASSERT_TRUE(stub_->ListResources(Context().get(), list_request, &page).ok());
  ASSERT_EQ(page.resources_size(), 1);
  EXPECT_EQ(page.resources(0).name(), "cart");
  ASSERT_FALSE(page.next_page_token().empty());
  list_request.set_page_token(page.next_page_token());
  ASSERT_TRUE(stub_->ListResources(Context().get(), list_request, &page).ok());
  ASSERT_EQ(page.resources_size(), 1);
  EXPECT_EQ(page.resources(0).name(), "checkout");

  v1::DeleteResourceRequest delete_request;
  *delete_request.mutable_key() = [] {
    v1::ResourceKey key;
    key.set_kind(v1::SERVICE);
    key.set_environment("prod");
    key.set_name("cart");
    return key;
  }();
  ASSERT_TRUE(stub_->DeleteResource(Context().get(), delete_request, &written).ok());
  Get("cart", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  v1::GetHistoryRequest history_request;
  history_request.set_kind(v1::SERVICE);
  history_request.set_name("checkout");
  v1::GetHistoryResponse history;
  ASSERT_TRUE(stub_->GetHistory(Context().get(), history_request, &history).ok());
  ASSERT_EQ(history.entries_size(), 1);
  EXPECT_EQ(history.entries(0).actor(), "alice");
  EXPECT_EQ(history.entries(0).comment(), "test");
}

TEST_F(GrpcApiTest, RejectsStaleVersionAndInvalidInput) {
  v1::WriteResponse written;
  ASSERT_TRUE(PutResource(ServiceResource("prod", "checkout"), &written).ok());
  grpc::Status stale = PutResource(ServiceResource("prod", "checkout", 9090), &written, 4);
  EXPECT_TRUE(stale.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
              stale.error_code() == grpc::StatusCode::ABORTED)
      << stale.error_code() << " " << stale.error_message();
  grpc::Status invalid = PutResource(ServiceResource("prod", "checkout", 70000), &written);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(invalid.error_message().find("port"), std::string::npos) << invalid.error_message();
  EXPECT_EQ(Get("checkout").version(), 1);
  EXPECT_EQ(Get("checkout").service().ports(0).port(), 8080u);
}

TEST_F(GrpcApiTest, AppliesBatchAllOrNothing) {
  v1::WriteResponse written;
  ASSERT_TRUE(PutResource(ServiceResource("prod", "checkout"), &written).ok());
  const int64_t revision = Revision();

  v1::ApplyChangesRequest request;
  request.set_comment("batch");
  *request.add_changes()->mutable_put() = ServiceResource("prod", "a");
  *request.add_changes()->mutable_put() = ServiceResource("prod", "b");
  v1::Change* stale = request.add_changes();
  *stale->mutable_put() = ServiceResource("prod", "checkout", 9090);
  stale->set_expected_version(3);
  grpc::Status failed = stub_->ApplyChanges(Context().get(), request, &written);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(Revision(), revision);
  grpc::Status status;
  Get("a", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  stale->set_expected_version(1);
  ASSERT_TRUE(stub_->ApplyChanges(Context().get(), request, &written).ok());
  EXPECT_EQ(written.revision(), revision + 1);
  EXPECT_EQ(written.resources_size(), 3);
  EXPECT_EQ(Get("checkout").mod_revision(), revision + 1);
  EXPECT_EQ(Get("a").mod_revision(), revision + 1);
}

TEST_F(GrpcApiTest, RedactsCertificatePrivateKey) {
  const TestCertificate cert = MakeSelfSignedCertificate("shop.example.com");
  v1::Resource resource;
  resource.set_kind(v1::CERTIFICATE);
  resource.set_environment("prod");
  resource.set_name("shop-tls");
  resource.mutable_certificate()->set_certificate_chain(cert.chain_pem);
  resource.mutable_certificate()->set_private_key(cert.key_pem);
  v1::WriteResponse written;
  grpc::Status status = PutResource(resource, &written);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(written.resources(0).certificate().private_key().empty());
  EXPECT_FALSE(written.resources(0).certificate().private_key_fingerprint().empty());

  v1::GetRevisionRequest request;
  request.set_revision(written.revision());
  v1::RevisionRecord record;
  ASSERT_TRUE(stub_->GetRevision(Context().get(), request, &record).ok());
  EXPECT_EQ(record.DebugString().find("PRIVATE KEY"), std::string::npos);
}

TEST_F(GrpcApiTest, WatchStreamsEventsFromSinceRevision) {
  v1::WriteResponse written;
  const int64_t start = Revision();
  ASSERT_TRUE(PutResource(ServiceResource("prod", "a"), &written).ok());

  auto context = Context();
  v1::WatchRequest request;
  request.set_since_revision(start);
  request.set_kind(v1::SERVICE);
  auto reader = stub_->Watch(context.get(), request);
  v1::WatchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.revision(), start + 1);
  EXPECT_EQ(event.change().key().name(), "a");

  ASSERT_TRUE(PutResource(ServiceResource("prod", "b"), &written, 0, "dave").ok());
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.revision(), start + 2);
  EXPECT_EQ(event.actor(), "dave");
  EXPECT_EQ(event.change().after().name(), "b");
  context->TryCancel();
  reader->Finish();
}

TEST_F(GrpcApiTest, WatchFromCompactedRevisionIsOutOfRange) {
  v1::WriteResponse written;
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_TRUE(PutResource(ServiceResource("prod", name), &written).ok());
  }
  ASSERT_TRUE(control_plane_->store().Compact(written.revision() - 1).ok());

  auto context = Context();
  v1::WatchRequest request;
  request.set_since_revision(0);
  auto reader = stub_->Watch(context.get(), request);
  v1::WatchEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
}

TEST_F(GrpcApiTest, ConcurrentWritersNeverLoseAnUpdate) {
  constexpr int kWriters = 8;
  constexpr int kIncrements = 50;
  v1::WriteResponse written;
  v1::Resource initial = ServiceResource("prod", "counter");
  (*initial.mutable_labels())["count"] = "0";
  ASSERT_TRUE(PutResource(initial, &written).ok());

  std::atomic<int> failures = 0;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        bool done = false;
        for (int attempt = 0; attempt < 500 && !done; ++attempt) {
          v1::Resource current = Get("counter");
          const int count = std::stoi(current.labels().at("count"));
          (*current.mutable_labels())["count"] = std::to_string(count + 1);
          v1::WriteResponse response;
          grpc::Status status = PutResource(current, &response, current.version());
          done = status.ok();
          if (!done && status.error_code() != grpc::StatusCode::FAILED_PRECONDITION &&
              status.error_code() != grpc::StatusCode::ABORTED) {
            ADD_FAILURE() << status.error_code() << " " << status.error_message();
            break;
          }
        }
        if (!done) ++failures;
      }
    });
  }
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(failures.load(), 0);
  v1::Resource final_state = Get("counter");
  EXPECT_EQ(final_state.version(), 1 + kWriters * kIncrements);
  EXPECT_EQ(final_state.labels().at("count"), std::to_string(kWriters * kIncrements));
}

// A write that is in flight when shutdown starts still commits and gets its answer: the
// connections that shutdown closes early (see meridian_cp_binary_test) are only closed once no
// call is left.
TEST_F(GrpcApiTest, ShutdownLetsAWriteInFlightFinish) {
  constexpr int kResources = 5000;  // about a second to commit: still running at shutdown
  v1::ApplyChangesRequest request;
  request.set_comment("in flight at shutdown");
  for (int i = 0; i < kResources; ++i) {
    *request.add_changes()->mutable_put() = ServiceResource("prod", absl::StrCat("svc-", i));
  }
  grpc::Status status;
  v1::WriteResponse written;
  std::thread writer([&] { status = stub_->ApplyChanges(Context().get(), request, &written); });
  for (int i = 0; i < 10000 && control_plane_->api_calls_in_flight() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GT(control_plane_->api_calls_in_flight(), 0) << "the write never reached the server";
  control_plane_->Shutdown();
  writer.join();
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(written.resources_size(), kResources);
  // Committed, not merely answered: the store is at the write's revision.
  store::ListQuery query;
  query.environment = "prod";
  query.page_size = 1;
  auto listed = control_plane_->store().List(query);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->revision, written.revision());
}

}  // namespace
}  // namespace meridian::testing
