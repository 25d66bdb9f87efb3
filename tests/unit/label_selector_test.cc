#include "controlplane/model/label_selector.h"

#include "gtest/gtest.h"

namespace meridian::model {
namespace {

google::protobuf::Map<std::string, std::string> Labels(
    std::initializer_list<std::pair<const std::string, std::string>> pairs) {
  google::protobuf::Map<std::string, std::string> labels;
  for (const auto& [key, value] : pairs) labels[key] = value;
  return labels;
}

TEST(LabelSelectorTest, MatchesEqualityInequalityAndExistence) {
  auto selector = LabelSelector::Parse("app=web, tier!=db,canary,!legacy");
  ASSERT_TRUE(selector.ok()) << selector.status();
  EXPECT_EQ(selector->requirements().size(), 4u);
  EXPECT_TRUE(selector->Matches(Labels({{"app", "web"}, {"tier", "front"}, {"canary", "1"}})));
  EXPECT_FALSE(selector->Matches(Labels({{"app", "web"}, {"tier", "db"}, {"canary", "1"}})));
  EXPECT_FALSE(selector->Matches(Labels({{"app", "web"}, {"canary", "1"}, {"legacy", "y"}})));
  EXPECT_FALSE(selector->Matches(Labels({{"app", "web"}})));
}

TEST(LabelSelectorTest, EmptySelectorMatchesEverything) {
  auto selector = LabelSelector::Parse("");
  ASSERT_TRUE(selector.ok());
  EXPECT_TRUE(selector->empty());
  EXPECT_TRUE(selector->Matches(Labels({{"a", "b"}})));
}

TEST(LabelSelectorTest, RejectsGarbage) {
  EXPECT_FALSE(LabelSelector::Parse("app=we b").ok());
  EXPECT_FALSE(LabelSelector::Parse("=web").ok());
  EXPECT_FALSE(LabelSelector::Parse("app='x'").ok());
}

}  // namespace
}  // namespace meridian::model
