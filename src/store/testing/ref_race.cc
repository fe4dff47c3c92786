// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Children talk to the parent over pipes with messages shorter than PIPE_BUF, so each
// write is atomic. Children leave with _exit so no test-framework state runs twice.
#include "src/store/testing/ref_race.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "dreamdb/store.h"

namespace dreamdb {

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads exactly n bytes; false on EOF or error.
bool ReadExactly(int fd, size_t n, std::string* out) {
  out->resize(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, out->data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

namespace {

constexpr size_t kIdText = ObjectId::kTextSize;

// Child c: puts two objects, then for each round reads the expected id from `go`, swaps
// from it to one of its objects (alternating, so it never swaps to the current target)
// and reports <c><code><desired id> on `results`.
[[noreturn]] void RaceChild(const std::string& uri, const std::string& ref, int c, int go,
                            int results) {
  auto opened = Store::Open(uri);
  if (!opened.ok()) _exit(10);
  Store& store = **opened;
  ObjectId mine[2];
  for (int p = 0; p < 2; ++p) {
    auto id = store.Put("race child " + std::to_string(c) + " parity " + std::to_string(p));
    if (!id.ok()) _exit(11);
    mine[p] = *id;
  }
  std::string text;
  for (int round = 0; ReadExactly(go, kIdText, &text); ++round) {
    auto expected = ObjectId::Parse(text);
    if (!expected.ok()) _exit(12);
    const ObjectId& desired = mine[round % 2];
    Status st = store.UpdateRef(ref, *expected, desired);
    std::string msg;
    msg.push_back(static_cast<char>(c));
    msg.push_back(static_cast<char>(st.code()));
    msg += desired.ToString();
    if (!WriteAll(results, msg)) _exit(13);
  }
  _exit(0);
}

}  // namespace

void RaceOnOneRef(const std::string& uri, int rounds) {
  constexpr int kChildren = 16;
  const int kRounds = rounds;
  const std::string ref = "race/branches/main";
  auto opened = Store::Open(uri);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& store = **opened;
  auto start = store.Put("race start");
  ASSERT_TRUE(start.ok());
  ASSERT_TRUE(store.CreateRef(ref, *start).ok());

  int results[2];
  ASSERT_EQ(pipe(results), 0);
  std::vector<int> go(kChildren);
  std::vector<pid_t> pids;
  for (int c = 0; c < kChildren; ++c) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(p[1]);
      close(results[0]);
      for (int other = 0; other < c; ++other) close(go[other]);
      RaceChild(uri, ref, c, p[0], results[1]);
    }
    close(p[0]);
    go[c] = p[1];
    pids.push_back(pid);
  }
  close(results[1]);

  ObjectId expected = *start;
  int bad_rounds = 0;
  for (int round = 0; round < kRounds && bad_rounds < 5; ++round) {
    // The barrier: every child is blocked on its pipe until this round's id arrives.
    const std::string text = expected.ToString();
    for (int c = 0; c < kChildren; ++c) ASSERT_TRUE(WriteAll(go[c], text));
    int winners = 0, conflicts = 0;
    ObjectId winner;
    std::string msg;
    for (int i = 0; i < kChildren; ++i) {
      ASSERT_TRUE(ReadExactly(results[0], 2 + kIdText, &msg)) << "a child died, round " << round;
      auto code = static_cast<StatusCode>(msg[1]);
      if (code == StatusCode::kOk) {
        ++winners;
        winner = *ObjectId::Parse(msg.substr(2));
      } else if (code == StatusCode::kConflict) {
        ++conflicts;
      } else {
        ADD_FAILURE() << "round " << round << ": child " << int(msg[0]) << " got code "
                      << int(msg[1]);
      }
    }
    auto now = store.ReadRef(ref);
    ASSERT_TRUE(now.ok()) << now.status().ToString();
    if (winners != 1 || conflicts != kChildren - 1 || now->target != winner) {
      ++bad_rounds;
      ADD_FAILURE() << "round " << round << ": " << winners << " winners, " << conflicts
                    << " conflicts";
    }
    auto target = store.Get(now->target);  // exists and is intact
    ASSERT_TRUE(target.ok()) << target.status().ToString();
    expected = now->target;
  }
  for (int fd : go) close(fd);  // EOF: children exit
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  close(results[0]);
}

}  // namespace dreamdb
