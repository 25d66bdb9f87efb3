// GET /api/v1/watch: newline-delimited WatchEvent JSON over a chunked response.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/api/rest_json.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/api/rest_support.h"
#include "controlplane/api/status_mapping.h"
#include "controlplane/api/watch_start.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"

namespace meridian::api {
namespace {

// Not application/json: httplib would gzip that for clients that accept it, and a
// compressor holds back lines a watcher is waiting for.
constexpr char kNdjsonContentType[] = "application/x-ndjson";

struct WatchStream {
  int64_t after_revision = 0;
  std::string environment;               // empty = all
  v1::Kind kind = v1::KIND_UNSPECIFIED;  // unspecified = all
  std::vector<store::RevisionPtr> pending;

  bool Matches(const v1::ChangeRecord& change) const {
    return (environment.empty() || change.key().environment() == environment) &&
           (kind == v1::KIND_UNSPECIFIED || change.key().kind() == kind);
  }

  // The lines for `batch`, advancing after_revision past it.
  std::string Render(const std::vector<store::RevisionPtr>& batch) {
    std::string lines;
    for (const auto& revision : batch) {
      for (const auto& change : revision->changes()) {
        if (!Matches(change)) continue;
        lines += DumpJson(WatchEventJson(*revision, change));
        lines += '\n';
      }
      after_revision = revision->revision();
    }
    return lines;
  }
};

absl::Status ParseWatchRequest(const httplib::Request& req, int64_t latest, WatchStream& stream) {
  // Without since_revision the stream starts now, like `kubectl get -w`.
  MERIDIAN_ASSIGN_OR_RETURN(stream.after_revision, rest::QueryInt(req, "since_revision", latest));
  stream.environment = rest::QueryString(req, "environment");
  if (!stream.environment.empty()) {
    MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", stream.environment));
  }
  if (const std::string kind = rest::QueryString(req, "kind"); !kind.empty()) {
    MERIDIAN_ASSIGN_OR_RETURN(stream.kind, model::ParseKind(kind));
  }
  return absl::OkStatus();
}

}  // namespace

void RestServer::RegisterWatchRoute() {
  http_.Get("/api/v1/watch",
            [this](const httplib::Request& req, httplib::Response& res) { HandleWatch(req, res); });
}

void RestServer::HandleWatch(const httplib::Request& req, httplib::Response& res) {
  auto stream = std::make_shared<WatchStream>();
  if (absl::Status status = ParseWatchRequest(req, feed_.LatestRevision(), *stream); !status.ok()) {
    return rest::SendError(res, status);
  }
  // A compacted since_revision is a plain JSON error, before any byte of the stream is sent.
  if (absl::Status status = CheckWatchStart(store_, stream->after_revision); !status.ok()) {
    return rest::SendError(res, status);
  }
  auto first = feed_.WaitForRevisions(stream->after_revision, absl::ZeroDuration());
  if (!first.ok()) return rest::SendError(res, first.status());
  stream->pending = *std::move(first);

  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      kNdjsonContentType, [this, stream](size_t /*offset*/, httplib::DataSink& sink) {
        std::vector<store::RevisionPtr> batch = std::move(stream->pending);
        stream->pending.clear();
        if (batch.empty()) {
          auto next = feed_.WaitForRevisions(stream->after_revision, options_.watch_poll_interval);
          if (!next.ok()) {
            // A watcher that fell behind compaction: say why, then end the stream cleanly.
            const OutputJson error = {{"error",
                                       {{"code", StatusCodeName(next.status().code())},
                                        {"message", std::string(next.status().message())}}}};
            const std::string line = DumpJson(error) + "\n";
            sink.write(line.data(), line.size());
            sink.done();
            return true;
          }
          batch = *std::move(next);
        }
        const std::string lines = stream->Render(batch);
        // Nothing to send: keep waiting unless the client has gone away. httplib ends the
        // loop itself when the server stops.
        if (lines.empty()) return sink.is_writable();
        return sink.write(lines.data(), lines.size());
      });
}

}  // namespace meridian::api
