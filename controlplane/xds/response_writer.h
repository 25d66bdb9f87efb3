#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/support/byte_buffer.h"

namespace meridian::xds {

// Appends length-delimited protobuf fields to a buffer. xDS responses are assembled from
// resources serialized once per revision (shared by every stream) plus a few per-stream
// fields, so building a response is a memcpy, not a re-encoding. Hand-written because
// protobuf's public API has no way to splice pre-serialized submessages into a message.
class ResponseWriter {
 public:
  // Field `number`, wire type 2 (string, bytes or embedded message).
  void AddBytes(uint32_t number, absl::string_view bytes) {
    AppendVarint((static_cast<uint64_t>(number) << 3) | 2);
    AppendVarint(bytes.size());
    buffer_.append(bytes.data(), bytes.size());
  }
  void AddString(uint32_t number, absl::string_view text) { AddBytes(number, text); }
  std::string Take() { return std::move(buffer_); }
  grpc::ByteBuffer TakeBuffer() {
    grpc::Slice slice(buffer_);
    buffer_.clear();
    return grpc::ByteBuffer(&slice, 1);
  }

 private:
  void AppendVarint(uint64_t value) {
    while (value >= 0x80) {
      buffer_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    buffer_.push_back(static_cast<char>(value));
  }

  std::string buffer_;
};

}  // namespace meridian::xds
