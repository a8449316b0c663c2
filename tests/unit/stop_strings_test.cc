#include "coordinator/stop_strings.h"

#include "gtest/gtest.h"

namespace tandem {
namespace {

TEST(StopStrings, NoStopsPassesEverythingThrough) {
  StopStrings s({});
  EXPECT_EQ(s.Add("hello"), "hello");
  EXPECT_EQ(s.Add(" world"), " world");
  EXPECT_EQ(s.Flush(), "");
  EXPECT_FALSE(s.stopped());
}

TEST(StopStrings, HoldsBackAPossibleStartThenReleasesIt) {
  StopStrings s({"END"});
  EXPECT_EQ(s.Add("abc E"), "abc ");
  EXPECT_EQ(s.Add("N"), "");
  EXPECT_EQ(s.Add("x"), "ENx");  // not a stop after all
  EXPECT_FALSE(s.stopped());
}

TEST(StopStrings, StopsAcrossDeltasAndDropsTheRest) {
  StopStrings s({"\n\n", "END"});
  EXPECT_EQ(s.Add("one E"), "one ");
  EXPECT_EQ(s.Add("ND tail"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.Add("more"), "");
  EXPECT_EQ(s.Flush(), "");
}

TEST(StopStrings, TheEarliestStopWins) {
  StopStrings s({"cd", "b"});
  EXPECT_EQ(s.Add("abcd"), "a");
  EXPECT_TRUE(s.stopped());
}

TEST(StopStrings, FlushReleasesTheHeldTail) {
  StopStrings s({"</s>"});
  EXPECT_EQ(s.Add("x </"), "x ");
  EXPECT_EQ(s.Flush(), "</");
}

TEST(StopStrings, EmptyStopStringsAreIgnored) {
  StopStrings s({""});
  EXPECT_EQ(s.Add("abc"), "abc");
  EXPECT_FALSE(s.stopped());
}

}  // namespace
}  // namespace tandem
