#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Keep call sites flat: return early on a non-OK status.
#define MERIDIAN_RETURN_IF_ERROR(expr)              \
  do {                                              \
    if (absl::Status meridian_status_ = (expr);     \
        !meridian_status_.ok()) {                   \
      return meridian_status_;                      \
    }                                               \
  } while (false)

#define MERIDIAN_CONCAT_INNER_(a, b) a##b
#define MERIDIAN_CONCAT_(a, b) MERIDIAN_CONCAT_INNER_(a, b)

#define MERIDIAN_ASSIGN_OR_RETURN(lhs, expr) \
  MERIDIAN_ASSIGN_OR_RETURN_IMPL_(MERIDIAN_CONCAT_(meridian_statusor_, __LINE__), lhs, expr)

#define MERIDIAN_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = std::move(statusor).value()
