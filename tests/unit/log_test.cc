// The pure parts of common/log.h: recognising stderr from $JOURNAL_STREAM,
// and the fields of a journal entry.
#include "common/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

namespace dropq {
namespace {

TEST(LogTest, JournalStreamMustNameTheFileExactly) {
  struct stat st {};
  st.st_dev = 27;
  st.st_ino = 123456;
  EXPECT_TRUE(JournalStreamIsFd("27:123456", st));
  EXPECT_FALSE(JournalStreamIsFd("27:123457", st));  // another stream
  EXPECT_FALSE(JournalStreamIsFd("28:123456", st));
  EXPECT_FALSE(JournalStreamIsFd("27:123456x", st));  // trailing bytes
  EXPECT_FALSE(JournalStreamIsFd("27:", st));
  EXPECT_FALSE(JournalStreamIsFd("", st));
  EXPECT_FALSE(JournalStreamIsFd("27", st));
  EXPECT_FALSE(JournalStreamIsFd("-1:-1", st));
  EXPECT_FALSE(JournalStreamIsFd("+27:123456", st));  // digits only
  EXPECT_FALSE(JournalStreamIsFd(" 27:123456", st));
  EXPECT_FALSE(JournalStreamIsFd("27: 123456", st));
  EXPECT_FALSE(JournalStreamIsFd(":123456", st));
  EXPECT_FALSE(JournalStreamIsFd("99999999999999999999999:123456", st));  // out of range
}

TEST(LogTest, FieldNamesAreDropqUpperCase) {
  EXPECT_EQ(JournalFieldName("queue"), "DROPQ_QUEUE");
  EXPECT_EQ(JournalFieldName("path"), "DROPQ_PATH");
  EXPECT_EQ(JournalFieldName("job"), "DROPQ_JOB_ID");
  EXPECT_EQ(JournalFieldName("delay_ms"), "DROPQ_DELAY_MS");
  // Journal field names allow only A-Z, 0-9 and '_'.
  EXPECT_EQ(JournalFieldName("a-b.c\xc3\xa9"), "DROPQ_A_B_C__");
}

TEST(LogTest, AnEntryCarriesTheLineItsLevelAndRawFieldValues) {
  const std::vector<LogField> fields = {
      {"queue", "images"}, {"job", "01J0ABC"}, {"path", "/srv/in/two\nlines"}, {"attempt", 2}};
  const std::vector<std::string> e = JournalEntry(LogLevel::kWarn, "job.failed", fields);
  ASSERT_EQ(e.size(), 8U);
  EXPECT_EQ(e[0].rfind("MESSAGE=job.failed queue=images job=01J0ABC path=", 0), 0U) << e[0];
  EXPECT_EQ(e[0].find('\n'), std::string::npos) << "the message stays one line";
  EXPECT_EQ(e[1], "PRIORITY=4");
  EXPECT_EQ(e[2].rfind("SYSLOG_IDENTIFIER=", 0), 0U);
  EXPECT_EQ(e[3], "DROPQ_EVENT=job.failed");
  EXPECT_EQ(e[4], "DROPQ_QUEUE=images");
  EXPECT_EQ(e[5], "DROPQ_JOB_ID=01J0ABC");
  EXPECT_EQ(e[6], "DROPQ_PATH=/srv/in/two\nlines");
  EXPECT_EQ(e[7], "DROPQ_ATTEMPT=2");
  EXPECT_EQ(JournalEntry(LogLevel::kError, "x", {})[1], "PRIORITY=3");
  EXPECT_EQ(JournalEntry(LogLevel::kInfo, "x", {})[1], "PRIORITY=6");
  EXPECT_EQ(JournalEntry(LogLevel::kDebug, "x", {})[1], "PRIORITY=7");
}

}  // namespace
}  // namespace dropq
