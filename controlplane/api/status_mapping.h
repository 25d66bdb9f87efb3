#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace meridian::api {

// The one place where absl::Status leaves the process. gRPC keeps the code as is; HTTP uses:
//   InvalidArgument, OutOfRange         400   (bad input; compacted or future revision)
//   Unauthenticated                     401
//   PermissionDenied                    403
//   NotFound                            404
//   AlreadyExists, Aborted              409   (create-only on an existing resource; conflict)
//   FailedPrecondition                  412   (version mismatch / If-Match, dangling reference)
//   ResourceExhausted                   429
//   Unavailable                         503   (database down)
//   DeadlineExceeded                    504
//   anything else                       500
// Error bodies are {"code": "INVALID_ARGUMENT", "message": "..."}.

grpc::Status ToGrpcStatus(const absl::Status& status);

int HttpStatusFor(absl::StatusCode code);

// "INVALID_ARGUMENT", "NOT_FOUND", ... (the canonical gRPC spelling).
std::string_view StatusCodeName(absl::StatusCode code);

// {"code": ..., "message": ...} as serialized JSON.
std::string ErrorJson(const absl::Status& status);

}  // namespace meridian::api
