#include "common/chat_template.h"
#include <gtest/gtest.h>
TEST(ChatTemplate, Smoke) {
  auto t = tandem::ChatTemplate::Parse("Hello {{ name }}!");
  ASSERT_TRUE(t.ok()) << t.status();
  auto r = t->Render({{"name", "World"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "Hello World!");
}
