#include "controlplane/model/redaction.h"

namespace meridian::model {

void RedactSecrets(v1::Resource& resource) {
  if (resource.has_certificate()) {
    resource.mutable_certificate()->clear_private_key();
  }
  if (resource.has_config_entry() && resource.config_entry().secret()) {
    resource.mutable_config_entry()->mutable_value()->set_string_value(kRedacted);
  }
}

void RedactSecrets(v1::ChangeRecord& record) {
  if (record.has_before()) RedactSecrets(*record.mutable_before());
  if (record.has_after()) RedactSecrets(*record.mutable_after());
}

void RedactSecrets(v1::RevisionRecord& record) {
  for (auto& change : *record.mutable_changes()) RedactSecrets(change);
}

}  // namespace meridian::model
