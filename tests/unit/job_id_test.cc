#include "common/job_id.h"

#include <gtest/gtest.h>

#include <set>

#include "common/clock.h"

namespace dropq {
namespace {

TEST(JobIdTest, CarriesItsCreationTime) {
  const uint8_t random[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  for (uint64_t ms : {uint64_t{0}, uint64_t{1}, uint64_t{1764979200123}, (uint64_t{1} << 48) - 1}) {
    const std::string id = EncodeJobId(ms, random);
    ASSERT_TRUE(IsJobId(id)) << id;
    EXPECT_EQ(JobIdTimeMs(id), static_cast<int64_t>(ms)) << id;
  }
  const int64_t before = NowUnixMs();
  const std::string id = NewJobId();
  const int64_t after = NowUnixMs();
  ASSERT_TRUE(JobIdTimeMs(id).has_value());
  EXPECT_GE(*JobIdTimeMs(id), before);
  EXPECT_LE(*JobIdTimeMs(id), after);
}

TEST(JobIdTest, SortsByTimeAndIsUnique) {
  std::set<std::string> ids;
  std::string last;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewJobId();
    EXPECT_TRUE(ids.insert(id).second);
    EXPECT_GE(id.substr(0, 10), last.substr(0, std::min<size_t>(10, last.size())));
    last = id;
  }
}

TEST(JobIdTest, AnythingElseHasNoTime) {
  for (const char* s :
       {"", "J1", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "81ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAU", "01arz3ndektsv4rrffq69g5fav"}) {
    EXPECT_FALSE(IsJobId(s)) << s;
    EXPECT_FALSE(JobIdTimeMs(s).has_value()) << s;
  }
  EXPECT_TRUE(IsJobId("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  const uint8_t zero[10] = {};
  const auto ms = JobIdTimeMs("01ARZ3NDEKTSV4RRFFQ69G5FAV");
  ASSERT_TRUE(ms.has_value());
  EXPECT_EQ(EncodeJobId(static_cast<uint64_t>(*ms), zero), "01ARZ3NDEK0000000000000000");
}

}  // namespace
}  // namespace dropq
