// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Units of the CLI core: terminal-safe text (Printable), the JSON string encoder, and the
// confined reader of blob files (BlobFiles). The commands are tested by the transcripts in
// tests/cli.
#include "cli/cli.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/blob_files.h"

namespace dreamdb::cli {
namespace {

namespace fs = std::filesystem;

// log printed commit messages with raw escape sequences: every control must be escaped.
TEST(PrintableTest, EscapesControlsKeepsPrintableUtf8) {
  EXPECT_EQ(Printable("plain text, é 漢字 🙂\ttab"), "plain text, é 漢字 🙂\ttab");
  EXPECT_EQ(Printable("\x1b[31mred\x1b[0m"), "\\u001b[31mred\\u001b[0m");
  EXPECT_EQ(Printable("\x1b]0;title\x07"), "\\u001b]0;title\\u0007");
  EXPECT_EQ(Printable("a\nb\rc"), "a\\nb\\rc");
  EXPECT_EQ(Printable(std::string("nul\0del\x7f", 8)), "nul\\u0000del\\u007f");
  EXPECT_EQ(Printable("c1 \xc2\x9b"
                      "6n \xc2\x85 \xc2\xa0"),
            "c1 \\u009b6n \\u0085 \xc2\xa0");
  // Invalid UTF-8: stray, truncated, overlong and surrogate sequences become \xNN.
  EXPECT_EQ(Printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(Printable("cut \xe6\xbc"), "cut \\xe6\\xbc");
  EXPECT_EQ(Printable("overlong \xc0\xaf"), "overlong \\xc0\\xaf");
  EXPECT_EQ(Printable("surrogate \xed\xa0\x80"), "surrogate \\xed\\xa0\\x80");
  // Valid JSON stays the same JSON.
  std::string json;
  AppendJsonString("\x1b[2J\xc2\x9b\n\"\\é", &json);
  EXPECT_EQ(Printable(json), json);
}

// log printed a commit message holding U+202E (RIGHT-TO-LEFT OVERRIDE) raw, so stored text
// could reorder what the reader sees ("Trojan Source"): every invisible bidi or line
// format character is escaped as \uXXXX, in Printable and in JSON strings alike.
TEST(PrintableTest, EscapesBidiAndInvisibleFormatCharacters) {
  EXPECT_EQ(Printable("log \u202etxt.exe"), "log \\u202etxt.exe");
  for (int cp : {0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
                 0x2066, 0x2067, 0x2068, 0x2069}) {
    std::string raw = cp < 0x800 ? std::string{static_cast<char>(0xc0 | (cp >> 6)),
                                               static_cast<char>(0x80 | (cp & 0x3f))}
                                 : std::string{static_cast<char>(0xe0 | (cp >> 12)),
                                               static_cast<char>(0x80 | ((cp >> 6) & 0x3f)),
                                               static_cast<char>(0x80 | (cp & 0x3f))};
    char want[8];
    std::snprintf(want, sizeof want, "\\u%04x", cp);
    EXPECT_EQ(Printable("a" + raw + "b"), std::string("a") + want + "b") << cp;
    std::string json;
    AppendJsonString(raw, &json);
    EXPECT_EQ(json, std::string("\"") + want + "\"") << cp;
    EXPECT_EQ(Printable(json), json);
  }
  // Neighbours that are ordinary text stay: ZWJ (emoji sequences), U+2030, U+2065, U+061B.
  for (std::string_view kept : {"\u200d", "\u2030", "\u2065", "\u061b", "\u2027"}) {
    EXPECT_EQ(Printable(kept), kept);
  }
}

TEST(JsonStringTest, EscapesC0DelAndC1AndReplacesInvalidUtf8) {
  std::string out;
  AppendJsonString(std::string("\x1b[31m\x7f\xc2\x9b\xc2\xa0\0\t\"\\\xff", 15), &out);
  EXPECT_EQ(out, "\"\\u001b[31m\\u007f\\u009b\xc2\xa0\\u0000\\t\\\"\\\\\\ufffd\"");
}

class BlobFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/dreamdb-blob-test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = fs::canonical(pattern).string();
    fs::create_directories(dir_ + "/root/sub");
    Write(dir_ + "/root/sub/a.bin", "AAAA");
    Write(dir_ + "/outside.txt", "secret");
  }
  void TearDown() override { fs::remove_all(dir_); }
  static void Write(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
  }
  BlobFiles Root(uint64_t max_bytes = kDefaultMaxBlobBytes) {
    auto files = BlobFiles::Open(dir_ + "/root", "--blob-root", max_bytes);
    EXPECT_TRUE(files.ok()) << files.status().ToString();
    return std::move(files).value();
  }
  std::string dir_;
};

TEST_F(BlobFilesTest, ReadsRegularFilesInsideTheRoot) {
  BlobFiles files = Root();
  EXPECT_EQ(*files.Read("sub/a.bin"), "AAAA");
  EXPECT_EQ(*files.Read(dir_ + "/root/sub/a.bin"), "AAAA");
  EXPECT_EQ(*files.Read("sub/../sub/a.bin"), "AAAA");
  fs::create_symlink("sub/a.bin", dir_ + "/root/alias");
  EXPECT_EQ(*files.Read("alias"), "AAAA");
}

TEST_F(BlobFilesTest, RefusesEscapesFromTheRoot) {
  BlobFiles files = Root();
  fs::create_symlink(dir_ + "/outside.txt", dir_ + "/root/link");
  fs::create_directory_symlink(dir_, dir_ + "/root/up");
  for (const std::string& path :
       std::vector<std::string>{"../outside.txt", "sub/../../outside.txt", "link", "up/outside.txt",
                                dir_ + "/outside.txt", "/etc/passwd", "/proc/self/environ"}) {
    auto read = files.Read(path);
    ASSERT_FALSE(read.ok()) << path;
    EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied) << path;
    EXPECT_NE(read.status().message().find("outside the blob root"), std::string::npos)
        << read.status().message();
  }
}

TEST_F(BlobFilesTest, RefusesWhatIsNotARegularFileWithoutBlocking) {
  ASSERT_EQ(::mkfifo((dir_ + "/root/fifo").c_str(), 0600), 0);
  auto fifo = Root().Read("fifo");
  EXPECT_EQ(fifo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(fifo.status().message(),
            "blob path 'fifo' is a FIFO; blob paths must name regular files");
  EXPECT_EQ(Root().Read("sub").status().code(), StatusCode::kInvalidArgument);
  auto all = BlobFiles::Open("/", "--blob-root", kDefaultMaxBlobBytes);
  ASSERT_TRUE(all.ok());
  auto zero = all->Read("/dev/zero");
  EXPECT_EQ(zero.status().message(),
            "blob path '/dev/zero' is a character device; blob paths must name regular files");
  EXPECT_EQ(Root().Read("missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Root().Read("").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BlobFilesTest, BoundsTheSize) {
  EXPECT_EQ(*Root(4).Read("sub/a.bin"), "AAAA");
  auto big = Root(3).Read("sub/a.bin");
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(big.status().message(),
            "blob path 'sub/a.bin' is 4 bytes; the limit is 3 (raise it with --max-blob-bytes)");
  // Files whose size lies (procfs says 0) are cut off while reading.
  auto all = BlobFiles::Open("/", "--blob-root", 3);
  ASSERT_TRUE(all.ok());
  auto proc = all->Read("/proc/self/status");
  EXPECT_EQ(proc.status().code(), StatusCode::kInvalidArgument) << proc.status().ToString();
}

TEST_F(BlobFilesTest, DisabledRefusesEveryPath) {
  BlobFiles off = BlobFiles::Disabled("no root for standard input");
  auto read = off.Read("sub/a.bin");
  EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(read.status().message(), "blob path 'sub/a.bin': no root for standard input");
  EXPECT_EQ(BlobFiles::Open(dir_ + "/nope", "--blob-root", 1).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(BlobFiles::Open(dir_ + "/outside.txt", "--blob-root", 1).status().code(),
            StatusCode::kInvalidArgument);
}

// `create --schema /dev/zero` read without bound and aborted with std::bad_alloc.
TEST_F(BlobFilesTest, CommandLineFileFromDevZeroIsRefusedNotRead) {
  auto zero = ReadCommandLineFile("/dev/zero", "--schema", kMaxSchemaFileBytes);
  EXPECT_EQ(zero.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(zero.status().message(),
            "--schema '/dev/zero' is a character device; only regular files are read ('-' "
            "reads standard input)");
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  auto fifo = ReadCommandLineFile(dir_ + "/fifo", "FILE", 10);
  EXPECT_EQ(fifo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fifo.status().message().find("is a FIFO"), std::string::npos);
  EXPECT_EQ(ReadCommandLineFile(dir_ + "/root", "FILE", 10).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCommandLineFile(dir_ + "/missing", "FILE", 10).status().code(),
            StatusCode::kNotFound);
}

TEST_F(BlobFilesTest, CommandLineFileIsBoundedAndFollowsLinks) {
  EXPECT_EQ(*ReadCommandLineFile(dir_ + "/outside.txt", "--schema", 6), "secret");
  fs::create_symlink(dir_ + "/outside.txt", dir_ + "/link");
  EXPECT_EQ(*ReadCommandLineFile(dir_ + "/link", "--schema", 6), "secret");
  auto big = ReadCommandLineFile(dir_ + "/outside.txt", "--schema", 5);
  EXPECT_EQ(big.status().message(),
            "--schema '" + dir_ + "/outside.txt' is 6 bytes; the limit is 5");
  auto proc = ReadCommandLineFile("/proc/self/status", "--schema", 3);  // its size says 0
  EXPECT_EQ(proc.status().code(), StatusCode::kInvalidArgument) << proc.status().ToString();
}

}  // namespace
}  // namespace dreamdb::cli
