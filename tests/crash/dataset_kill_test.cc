// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// Dataset commits killed with SIGKILL at random points (spec/14-semantics.md §7, §13), on
// a file:// store, with real processes.
//
// SingleWriterKilledAtRandomPoints: trial after trial, a child process opens the dataset
// and commits in a loop (appends with automatic anchors, deletes of records it finds by
// scanning, snapshots, branches), announcing each operation before it starts ("intent")
// and after it returns ("ack"). The parent kills it at a random point, then, in a fresh
// view of the store, checks:
//   1. Verify(store, dataset) reports no problems;
//   2. old or new (§13.3): the branch head is the last acknowledged manifest, or the
//      in-flight operation landed as exactly one manifest whose only parent is that one
//      and whose delta is that operation's (n added / the k anchors deleted);
//   3. no acknowledged commit is lost: walking the head's history back to the previous
//      trial's head visits exactly this trial's acknowledged manifests (plus the one that
//      landed in flight), newest first;
//   4. the head's count equals the model's live records; every 10 trials (and at the end)
//      a full scan returns exactly the model's records: each anchor with its (writer,
//      op, row) tag and value (anchors assigned in order, never reused: §13.8);
//   5. acknowledged snapshots and branches exist and target the manifest they were
//      created at; one in flight either does not exist or targets that manifest.
// The next trial's child must open the dataset at the resolved head and commit again; at
// the end the parent itself commits once more.
//
// FourConcurrentWritersKilledAtRandomPoints: four children append to the same branch at
// once (rebasing on each other), and are killed at random points and replaced. At the end
// Verify reports no problems, the head's history contains every acknowledged manifest,
// every acknowledged append's rows are there exactly once, every append in flight at a
// kill is there entirely or not at all, nothing else is there, the history has exactly one
// manifest per landed append (no mutation applied twice), and a new commit succeeds.
//
// Children talk to the parent over pipes in lines shorter than PIPE_BUF (each write is
// atomic) and leave with _exit. Kill points are chosen relative to the writers' progress
// messages, so every trial gets as far as intended however loaded the machine is.
// DREAMDB_CRASH_TRIALS=<n> raises the number of trials (default 200; the concurrent test
// kills n/2 children), DREAMDB_CRASH_SEED=<n> replays the random choices (not the timing).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dreamdb/dataset.h"
#include "dreamdb/store.h"

namespace dreamdb {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kName = "crash";

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base ? base : "/tmp") + "/dreamdb-dskill-XXXXXX";
  return mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// ---- Pipe messages: one line per write, shorter than PIPE_BUF ----

void Send(int fd, std::string line) {
  line.push_back('\n');
  if (line.size() > PIPE_BUF) _exit(20);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(21);
    done += static_cast<size_t>(n);
  }
}

class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  // Blocks for the next line; nullopt at EOF.
  std::optional<std::string> Next() {
    while (true) {
      if (auto line = Pop()) return line;
      if (!Fill()) return std::nullopt;
    }
  }
  // A complete buffered line, if any.
  std::optional<std::string> Pop() {
    size_t nl = buf_.find('\n');
    if (nl == std::string::npos) return std::nullopt;
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    return line;
  }
  // One read(); false at EOF or error.
  bool Fill() {
    char tmp[4096];
    while (true) {
      ssize_t r = read(fd_, tmp, sizeof(tmp));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(r));
      return true;
    }
  }

 private:
  int fd_;
  std::string buf_;
};

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) out.push_back(tok);
  return out;
}

// ---- Records: every row is tagged (writer, op, row) and carries a value derived from it ----

struct Tag {
  int64_t w = 0, s = 0, i = 0;
  bool operator==(const Tag&) const = default;
  auto operator<=>(const Tag&) const = default;
};

double ValueOf(const Tag& t) {
  return static_cast<double>(t.w) * 1e6 + static_cast<double>(t.s) * 1e3 +
         static_cast<double>(t.i) + 0.25;
}

Schema TagSchema() {
  Schema s;
  (void)s.AddInt64("w");
  (void)s.AddInt64("s");
  (void)s.AddInt64("i");
  (void)s.AddFloat64("x");
  return s;
}

Batch TagBatch(const Schema& schema, int64_t w, int64_t s, int64_t n) {
  Column cw(*schema.Find("w")), cs(*schema.Find("s")), ci(*schema.Find("i")), cx(*schema.Find("x"));
  for (int64_t i = 0; i < n; ++i) {
    cw.AppendInt64(w);
    cs.AppendInt64(s);
    ci.AppendInt64(i);
    cx.AppendFloat64(ValueOf({w, s, i}));
  }
  Batch b;
  b.columns = {std::move(cw), std::move(cs), std::move(ci), std::move(cx)};
  return b;
}

// Every live record: anchor -> tag. Fails (returns the error) if a value does not match
// its tag or anchors are not strictly ascending.
Result<std::map<uint64_t, Tag>> ScanAll(const Dataset& ds) {
  std::map<uint64_t, Tag> out;
  ScanOptions so;
  so.fields = {"w", "s", "i", "x"};
  so.batch_rows = 4096;
  ASSIGN_OR_RETURN(auto reader, ds.Scan(so));
  uint64_t last = 0;
  bool first = true;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader->Next());
    if (!batch) break;
    for (uint64_t r = 0; r < batch->num_rows(); ++r) {
      uint64_t a = batch->anchors[r];
      if (!first && a <= last)
        return Internal("scan anchors not ascending at " + std::to_string(a));
      first = false;
      last = a;
      Tag t{batch->columns[0].Int64At(r), batch->columns[1].Int64At(r),
            batch->columns[2].Int64At(r)};
      if (!batch->columns[3].IsValid(r) || batch->columns[3].Float64At(r) != ValueOf(t)) {
        return Internal("anchor " + std::to_string(a) + ": value does not match its tag");
      }
      out[a] = t;
    }
  }
  return out;
}

std::string Problems(const VerifyReport& r) {
  std::string out;
  for (size_t i = 0; i < r.problems.size() && i < 5; ++i) out += "\n  " + r.problems[i];
  return out;
}

[[noreturn]] void Fail(int out, const std::string& what, const Status& s) {
  std::string msg = "E " + what + ": " + s.ToString();
  if (msg.size() > 1000) msg.resize(1000);
  for (char& c : msg) {
    if (c == '\n') c = ' ';
  }
  Send(out, msg);
  _exit(30);
}

class DatasetKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    uri_ = "file://" + dir_ + "/store";
    seed_ = EnvOr("DREAMDB_CRASH_SEED", std::random_device{}());
    trials_ = EnvOr("DREAMDB_CRASH_TRIALS", 200);
    auto store = Store::Open(uri_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    std::shared_ptr<Store> shared = std::move(*store);
    // The concurrent test's dataset (the single-writer test makes its own).
    auto ds = Dataset::Create(shared, kName, TagSchema());
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A fresh view of the store and the dataset's main branch.
  struct View {
    std::shared_ptr<Store> store;
    std::unique_ptr<Dataset> ds;
  };
  ::testing::AssertionResult OpenView(View* v, std::string_view name = kName) {
    auto store = Store::Open(uri_);
    if (!store.ok()) return ::testing::AssertionFailure() << store.status().ToString();
    v->store = std::move(*store);
    auto ds = Dataset::Open(v->store, name);
    if (!ds.ok()) return ::testing::AssertionFailure() << ds.status().ToString();
    v->ds = std::move(*ds);
    return ::testing::AssertionSuccess();
  }

  std::string dir_;
  std::string uri_;
  uint64_t seed_ = 0;
  uint64_t trials_ = 200;
};

// ---- Single writer ----

// Announces "R <head> <count>", then loops over operations. Messages:
//   IA s n            / DA s <manifest> <count> <added>
//   ID s a:w:s:i ...  / DD s <manifest> <count> <deleted>
//   IS s label <head> / DS s label
//   IB s name <head>  / DB s name
[[noreturn]] void SingleWriter(const std::string& uri, const std::string& name, int64_t trial,
                               uint64_t seed, uint64_t next_anchor, int out) {
  auto opened = Store::Open(uri);
  if (!opened.ok()) Fail(out, "open store", opened.status());
  std::shared_ptr<Store> store = std::move(*opened);
  auto dso = Dataset::Open(store, name);
  if (!dso.ok()) Fail(out, "open dataset", dso.status());
  Dataset& ds = **dso;
  const Schema schema = ds.schema();
  Send(out, "R " + ds.head().ToString() + " " + std::to_string(ds.Count()));
  std::mt19937_64 rng(seed);
  const std::string s_trial = std::to_string(trial);
  for (int64_t s = 0;; ++s) {
    const std::string ss = std::to_string(s);
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 40);
      Batch b = TagBatch(schema, trial, s, n);
      Send(out, "IA " + ss + " " + std::to_string(n));
      auto info = ds.AppendMany(b);
      if (!info.ok()) Fail(out, "append", info.status());
      next_anchor += static_cast<uint64_t>(n);
      Send(out, "DA " + ss + " " + info->manifest.ToString() + " " + std::to_string(info->count) +
                    " " + std::to_string(info->added));
    } else if (op < 8) {
      ScanOptions so;
      so.fields = {"w", "s", "i"};
      so.start = next_anchor == 0 ? 0 : rng() % next_anchor;
      so.limit = 1 + rng() % 8;
      so.batch_rows = so.limit;
      auto reader = ds.Scan(so);
      if (!reader.ok()) Fail(out, "scan", reader.status());
      auto batch = (*reader)->Next();
      if (!batch.ok()) Fail(out, "scan next", batch.status());
      if (!*batch) continue;
      std::string intent = "ID " + ss;
      for (uint64_t r = 0; r < (*batch)->num_rows(); ++r) {
        intent += " " + std::to_string((*batch)->anchors[r]) + ":" +
                  std::to_string((*batch)->columns[0].Int64At(r)) + ":" +
                  std::to_string((*batch)->columns[1].Int64At(r)) + ":" +
                  std::to_string((*batch)->columns[2].Int64At(r));
      }
      Send(out, intent);
      auto info = ds.Delete((*batch)->anchors);
      if (!info.ok()) Fail(out, "delete", info.status());
      Send(out, "DD " + ss + " " + info->manifest.ToString() + " " + std::to_string(info->count) +
                    " " + std::to_string(info->deleted));
    } else if (op == 8) {
      const std::string label = "t" + s_trial + "-" + ss;
      Send(out, "IS " + ss + " " + label + " " + ds.head().ToString());
      Status st = ds.Snapshot(label);
      if (!st.ok()) Fail(out, "snapshot", st);
      Send(out, "DS " + ss + " " + label);
    } else {
      const std::string name = "b" + s_trial + "-" + ss;
      Send(out, "IB " + ss + " " + name + " " + ds.head().ToString());
      Status st = ds.Branch(name);
      if (!st.ok()) Fail(out, "branch", st);
      Send(out, "DB " + ss + " " + name);
    }
  }
}

struct Pending {
  char kind = 0;  // 'A', 'D', 'S', 'B'; 0 = none
  int64_t s = 0;
  int64_t n = 0;                                  // A
  std::vector<std::pair<uint64_t, Tag>> deleted;  // D
  std::string name;                               // S, B
  ObjectId at;                                    // S, B
};

TEST_F(DatasetKillTest, SingleWriterKilledAtRandomPoints) {
  SCOPED_TRACE("DREAMDB_CRASH_SEED=" + std::to_string(seed_));
  std::mt19937_64 rng(seed_);

  // Verify reads every object of the dataset, so a fresh dataset every kTrialsPerDataset
  // trials keeps each trial's checks bounded (the store is shared).
  constexpr uint64_t kTrialsPerDataset = 25;
  // The model: what the branch must hold.
  std::string name;
  ObjectId head;
  std::map<uint64_t, Tag> live;
  uint64_t next_anchor = 0;
  std::map<std::string, ObjectId> snapshots, branches;
  std::vector<ObjectId> all_acked;  // of the current dataset
  int landed_in_flight = 0, acked_ops = 0, appends = 0, deletes = 0, refs = 0, commits = 0;
  int in_flight = 0;  // kills with an operation announced but not acknowledged
  uint64_t objects_verified = 0;
  double step_us = 20000;  // mean time between acknowledgements, measured as we go
  const auto started = Clock::now();
  double verify_s = 0, check_s = 0;  // time the parent spends checking

  // After a dataset's last trial: the whole history holds every acknowledged manifest
  // (once each), every snapshot and branch is where it was made, and a new commit lands.
  auto finish = [&]() {
    SCOPED_TRACE("finishing dataset " + name);
    View v;
    ASSERT_TRUE(OpenView(&v, name));
    std::set<ObjectId> history;
    ASSERT_TRUE(v.ds->History([&](const CommitInfo& c) {
                      history.insert(c.manifest);
                      return true;
                    })
                    .ok());
    for (const auto& m : all_acked) ASSERT_TRUE(history.count(m)) << m.ToString();
    ASSERT_EQ(history.size(), all_acked.size() + 1) << "history: create + every commit, once";
    auto records = ScanAll(*v.ds);
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    ASSERT_TRUE(*records == live) << "scan differs from the model";
    for (const auto& [label, at] : snapshots) {
      auto s = Dataset::OpenAt(v.store, name, label);
      ASSERT_TRUE(s.ok()) << "snapshot " << label << ": " << s.status().ToString();
      ASSERT_EQ((*s)->head(), at) << "snapshot " << label;
    }
    for (const auto& [branch, at] : branches) {
      auto b = Dataset::Open(v.store, name, branch);
      ASSERT_TRUE(b.ok()) << "branch " << branch << ": " << b.status().ToString();
      ASSERT_EQ((*b)->head(), at) << "branch " << branch;
    }
    auto info = v.ds->AppendMany(TagBatch(v.ds->schema(), -1, 0, 3));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->count, live.size() + 3);
    EXPECT_EQ(info->parents, std::vector<ObjectId>{head});
    auto report = Verify(*v.store, name);
    ASSERT_TRUE(report.ok());
    EXPECT_TRUE(report->problems.empty()) << Problems(*report);
    objects_verified += report->objects;
    commits += static_cast<int>(all_acked.size());
  };

  for (uint64_t trial = 0; trial < trials_; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    if (trial % kTrialsPerDataset == 0) {
      if (trial > 0) {
        finish();
        if (HasFatalFailure()) return;
      }
      name = "w" + std::to_string(trial / kTrialsPerDataset);
      View v;
      auto store = Store::Open(uri_);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      v.store = std::move(*store);
      auto ds = Dataset::Create(v.store, name, TagSchema());
      ASSERT_TRUE(ds.ok()) << ds.status().ToString();
      head = (*ds)->head();
      live.clear();
      next_anchor = 0;
      snapshots.clear();
      branches.clear();
      all_acked.clear();
    }
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(p[0]);
      SingleWriter(uri_, name, static_cast<int64_t>(trial), seed_ + trial, next_anchor, p[1]);
    }
    close(p[1]);
    LineReader reader(p[0]);
    std::vector<std::string> log;
    // Kill point: after the ready message and 0-4 acknowledgements, plus a random fraction
    // of a step (up to 1.5 steps, so kills also land just after a message).
    const int wait_acks = static_cast<int>(rng() % 5);
    int acks = 0;
    auto last = Clock::now();
    bool ready = false;
    while (!ready || acks < wait_acks) {
      auto line = reader.Next();
      ASSERT_TRUE(line.has_value()) << "the writer died by itself; log so far:\n"
                                    << (log.empty() ? "" : log.back());
      ASSERT_NE((*line)[0], 'E') << *line;
      log.push_back(*line);
      if ((*line)[0] == 'R') {
        ready = true;
        last = Clock::now();
      } else if ((*line)[0] == 'D') {
        auto now = Clock::now();
        step_us =
            0.9 * step_us + 0.1 * std::chrono::duration<double, std::micro>(now - last).count();
        last = now;
        ++acks;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(
        static_cast<int64_t>(static_cast<double>(rng() % 1000) / 1000.0 * 1.5 * step_us)));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    while (auto line = reader.Next()) log.push_back(*line);
    close(p[0]);
    for (const auto& l : log) ASSERT_NE(l[0], 'E') << l;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the writer stopped by itself, status " << status;

    // Replay the log against the model.
    const ObjectId trial_start = head;
    std::vector<ObjectId> acked;  // this trial's acknowledged manifests, in order
    Pending pending;
    for (const std::string& line : log) {
      auto t = Split(line);
      ASSERT_FALSE(t.empty());
      const std::string& k = t[0];
      if (k == "R") {
        ASSERT_EQ(t.size(), 3u) << line;
        ASSERT_EQ(t[1], head.ToString()) << "the writer opened another head than the last one";
        ASSERT_EQ(std::stoull(t[2]), live.size());
        continue;
      }
      const int64_t s = std::stoll(t[1]);
      if (k == "IA") {
        pending = Pending{'A', s, std::stoll(t[2]), {}, "", {}};
      } else if (k == "ID") {
        pending = Pending{'D', s, 0, {}, "", {}};
        for (size_t j = 2; j < t.size(); ++j) {
          uint64_t a;
          Tag tag;
          ASSERT_EQ(std::sscanf(t[j].c_str(), "%" SCNu64 ":%" SCNd64 ":%" SCNd64 ":%" SCNd64, &a,
                                &tag.w, &tag.s, &tag.i),
                    4);
          pending.deleted.emplace_back(a, tag);
          // The writer found it by scanning: the model must agree it is live with that tag.
          ASSERT_TRUE(live.count(a) && live[a] == tag) << "scan returned a record the model "
                                                          "does not have: anchor "
                                                       << a;
        }
      } else if (k == "IS" || k == "IB") {
        ASSERT_EQ(t.size(), 4u) << line;
        ASSERT_EQ(t[3], head.ToString()) << "a ref was created at a stale head";
        pending = Pending{k[1], s, 0, {}, t[2], *ObjectId::Parse(t[3])};
      } else if (k == "DA" || k == "DD") {
        ASSERT_EQ(pending.kind, k[1]) << line;
        ASSERT_EQ(pending.s, s);
        ASSERT_EQ(t.size(), 5u) << line;
        ObjectId m = *ObjectId::Parse(t[2]);
        if (k == "DA") {
          ASSERT_EQ(std::stoll(t[4]), pending.n) << "added";
          for (int64_t i = 0; i < pending.n; ++i) {
            live[next_anchor++] = Tag{static_cast<int64_t>(trial), s, i};
          }
          ++appends;
        } else {
          ASSERT_EQ(std::stoull(t[4]), pending.deleted.size()) << "deleted";
          for (const auto& [a, tag] : pending.deleted) live.erase(a);
          ++deletes;
        }
        ASSERT_EQ(std::stoull(t[3]), live.size()) << "acknowledged count";
        ASSERT_NE(m, head);
        head = m;
        acked.push_back(m);
        pending = Pending{};
        ++acked_ops;
      } else if (k == "DS" || k == "DB") {
        ASSERT_EQ(pending.kind, k[1]) << line;
        ASSERT_EQ(pending.name, t[2]);
        (k == "DS" ? snapshots : branches)[pending.name] = pending.at;
        pending = Pending{};
        ++acked_ops;
        ++refs;
      } else {
        FAIL() << "unexpected message " << line;
      }
    }

    // A fresh view: verify, then resolve the operation in flight.
    const auto check_start = Clock::now();
    if (pending.kind != 0) ++in_flight;
    View v;
    ASSERT_TRUE(OpenView(&v, name));
    auto report = Verify(*v.store, name);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_TRUE(report->problems.empty())
        << report->problems.size() << " problems:" << Problems(*report);
    verify_s += std::chrono::duration<double>(Clock::now() - check_start).count();
    const ObjectId now = v.ds->head();
    if (now != head) {
      ASSERT_TRUE(pending.kind == 'A' || pending.kind == 'D')
          << "the head moved without a commit in flight";
      CommitInfo top;
      ASSERT_TRUE(v.ds->History([&](const CommitInfo& c) {
                        top = c;
                        return false;
                      })
                      .ok());
      ASSERT_EQ(top.manifest, now);
      ASSERT_EQ(top.parents, std::vector<ObjectId>{head})
          << "the new head is not a child of the last acknowledged one: an acknowledged "
             "commit was lost or a commit landed twice";
      if (pending.kind == 'A') {
        ASSERT_EQ(static_cast<int64_t>(top.added), pending.n);
        for (int64_t i = 0; i < pending.n; ++i) {
          live[next_anchor++] = Tag{static_cast<int64_t>(trial), pending.s, i};
        }
      } else {
        ASSERT_EQ(top.deleted, pending.deleted.size());
        for (const auto& [a, tag] : pending.deleted) live.erase(a);
      }
      ++landed_in_flight;
      head = now;
      acked.push_back(now);
    }
    ASSERT_EQ(v.ds->Count(), live.size()) << "count";
    if (pending.kind == 'S' || pending.kind == 'B') {
      auto at = pending.kind == 'S' ? Dataset::OpenAt(v.store, name, pending.name)
                                    : Dataset::Open(v.store, name, pending.name);
      if (at.ok()) {
        ASSERT_EQ((*at)->head(), pending.at) << "ref " << pending.name;
        (pending.kind == 'S' ? snapshots : branches)[pending.name] = pending.at;
        ++landed_in_flight;
      } else {
        ASSERT_EQ(at.status().code(), StatusCode::kNotFound) << at.status().ToString();
      }
    }

    // The history back to the previous trial's head is exactly this trial's commits.
    std::vector<ObjectId> walked;
    bool reached = trial_start == now;
    if (!reached) {
      ASSERT_TRUE(v.ds->History([&](const CommitInfo& c) {
                        if (c.manifest == trial_start) {
                          reached = true;
                          return false;
                        }
                        walked.push_back(c.manifest);
                        return true;
                      })
                      .ok());
    }
    ASSERT_TRUE(reached) << "the previous head is not in the history";
    std::reverse(walked.begin(), walked.end());
    ASSERT_EQ(walked, acked)
        << "history since the last trial differs from the acknowledged commits";
    all_acked.insert(all_acked.end(), acked.begin(), acked.end());

    if (trial % 10 == 9 || trial + 1 == trials_) {
      auto records = ScanAll(*v.ds);
      ASSERT_TRUE(records.ok()) << records.status().ToString();
      ASSERT_EQ(records->size(), live.size());
      ASSERT_TRUE(*records == live) << "scan differs from the model";
      for (const auto& [label, at] : snapshots) {
        auto s = Dataset::OpenAt(v.store, name, label);
        ASSERT_TRUE(s.ok()) << "snapshot " << label << ": " << s.status().ToString();
        ASSERT_EQ((*s)->head(), at) << "snapshot " << label;
      }
      for (const auto& [branch, at] : branches) {
        auto b = Dataset::Open(v.store, name, branch);
        ASSERT_TRUE(b.ok()) << "branch " << branch << ": " << b.status().ToString();
        ASSERT_EQ((*b)->head(), at) << "branch " << branch;
      }
    }
    check_s += std::chrono::duration<double>(Clock::now() - check_start).count();
  }

  finish();
  if (HasFatalFailure()) return;
  // The whole store (every dataset made here) verifies.
  {
    View v;
    ASSERT_TRUE(OpenView(&v, name));
    auto report = Verify(*v.store);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->problems.empty()) << Problems(*report);
  }

  size_t stale_tmp = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/store/tmp")) ++stale_tmp;
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  RecordProperty("trials", static_cast<int>(trials_));
  RecordProperty("acknowledged", acked_ops);
  RecordProperty("landed_in_flight", landed_in_flight);
  std::cout << trials_ << " kills in " << static_cast<int>(secs) << " s: " << acked_ops
            << " acknowledged operations (" << appends << " appends, " << deletes << " deletes, "
            << refs << " snapshots/branches); " << in_flight
            << " kills with an operation in flight, of which " << landed_in_flight
            << " had landed; " << commits << " commits in "
            << (trials_ + kTrialsPerDataset - 1) / kTrialsPerDataset << " datasets, "
            << objects_verified << " objects verified at the end, " << stale_tmp
            << " stale temp files (tolerated), mean step " << static_cast<int>(step_us / 1000)
            << " ms; checks " << static_cast<int>(check_s) << " s (verify "
            << static_cast<int>(verify_s) << " s)\n";
  EXPECT_GT(appends, 0);
  EXPECT_GT(deletes, 0);
}

// ---- Four concurrent writers ----

// Announces "R", then appends (tag w = the writer's instance) and now and then snapshots:
//   IA s n / DA s <manifest> <attempts>;  IS s label <head> / DS s label
[[noreturn]] void ConcurrentWriter(const std::string& uri, int64_t w, uint64_t seed, int out) {
  auto opened = Store::Open(uri);
  if (!opened.ok()) Fail(out, "open store", opened.status());
  std::shared_ptr<Store> store = std::move(*opened);
  auto dso = Dataset::Open(store, kName);
  if (!dso.ok()) Fail(out, "open dataset", dso.status());
  Dataset& ds = **dso;
  const Schema schema = ds.schema();
  Send(out, "R");
  std::mt19937_64 rng(seed);
  for (int64_t s = 0;; ++s) {
    const std::string ss = std::to_string(s);
    if (rng() % 10 < 9) {
      const int64_t n = 1 + static_cast<int64_t>(rng() % 20);
      Send(out, "IA " + ss + " " + std::to_string(n));
      auto info = ds.AppendMany(TagBatch(schema, w, s, n));
      if (!info.ok()) Fail(out, "append", info.status());
      Send(out,
           "DA " + ss + " " + info->manifest.ToString() + " " + std::to_string(info->attempts));
    } else {
      const std::string label = "c" + std::to_string(w) + "-" + ss;
      Send(out, "IS " + ss + " " + label + " " + ds.head().ToString());
      Status st = ds.Snapshot(label);
      if (!st.ok()) Fail(out, "snapshot", st);
      Send(out, "DS " + ss + " " + label);
    }
  }
}

TEST_F(DatasetKillTest, FourConcurrentWritersKilledAtRandomPoints) {
  SCOPED_TRACE("DREAMDB_CRASH_SEED=" + std::to_string(seed_));
  std::mt19937_64 rng(seed_ ^ 0x5bd1e995u);
  constexpr int kSlots = 4;
  const uint64_t kills_wanted = std::max<uint64_t>(1, trials_ / 2);
  const auto started = Clock::now();

  struct Slot {
    pid_t pid = -1;
    int64_t w = -1;
    std::unique_ptr<LineReader> reader;
    int wait_acks = 0;
    int acks = 0;
    bool ready = false;
    Clock::time_point last;
    std::optional<Clock::time_point> deadline;
  };
  std::vector<Slot> slots(kSlots);
  // Everything the writers said, per writer instance.
  std::map<int64_t, std::vector<std::string>> logs;
  int64_t next_w = 0;
  uint64_t kills = 0;
  double step_us = 40000;

  auto spawn = [&](Slot& slot) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    const int64_t w = next_w++;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(p[0]);
      for (auto& other : slots) {
        if (other.reader) close(other.reader->fd());
      }
      ConcurrentWriter(uri_, w, seed_ + static_cast<uint64_t>(w) * 7919, p[1]);
    }
    close(p[1]);
    slot = Slot{};
    slot.pid = pid;
    slot.w = w;
    slot.reader = std::make_unique<LineReader>(p[0]);
    slot.wait_acks = static_cast<int>(rng() % 5);
    slot.last = Clock::now();
  };
  auto reap = [&](Slot& slot) {
    ASSERT_EQ(kill(slot.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(slot.pid, &status, 0), slot.pid);
    while (auto line = slot.reader->Next()) logs[slot.w].push_back(*line);
    close(slot.reader->fd());
    for (const auto& l : logs[slot.w]) ASSERT_NE(l[0], 'E') << "writer " << slot.w << ": " << l;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer " << slot.w << " stopped by itself, status " << status;
    slot.reader.reset();
    ++kills;
  };

  for (auto& slot : slots) {
    spawn(slot);
    if (HasFatalFailure()) return;
  }
  auto progress = Clock::now();
  while (kills < kills_wanted) {
    std::vector<pollfd> fds;
    auto now = Clock::now();
    int timeout_ms = 1000;
    for (auto& slot : slots) {
      fds.push_back(pollfd{slot.reader->fd(), POLLIN, 0});
      if (slot.deadline) {
        auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(*slot.deadline - now).count();
        timeout_ms = std::min<int>(timeout_ms, static_cast<int>(std::max<int64_t>(0, ms)));
      }
    }
    int r = poll(fds.data(), fds.size(), timeout_ms);
    ASSERT_GE(r, 0) << strerror(errno);
    now = Clock::now();
    for (int k = 0; k < kSlots; ++k) {
      Slot& slot = slots[k];
      if (fds[k].revents & (POLLIN | POLLHUP)) {
        if (!slot.reader->Fill()) {
          ASSERT_FALSE(true) << "writer " << slot.w << " died by itself: "
                             << (logs[slot.w].empty() ? "" : logs[slot.w].back());
        }
        while (auto line = slot.reader->Pop()) {
          ASSERT_NE((*line)[0], 'E') << "writer " << slot.w << ": " << *line;
          logs[slot.w].push_back(*line);
          if ((*line)[0] == 'R') {
            slot.ready = true;
            slot.last = now;
          } else if ((*line)[0] == 'D') {
            step_us = 0.95 * step_us +
                      0.05 * std::chrono::duration<double, std::micro>(now - slot.last).count();
            slot.last = now;
            ++slot.acks;
            progress = now;
          }
          if (slot.ready && slot.acks >= slot.wait_acks && !slot.deadline) {
            slot.deadline = now + std::chrono::microseconds(static_cast<int64_t>(
                                      static_cast<double>(rng() % 1000) / 1000.0 * 1.5 * step_us));
          }
        }
      }
      if (slot.deadline && now >= *slot.deadline) {
        reap(slot);
        if (HasFatalFailure()) return;
        spawn(slot);
        if (HasFatalFailure()) return;
      }
    }
    ASSERT_LT(std::chrono::duration<double>(now - progress).count(), 60.0)
        << "no writer acknowledged anything for a minute";
  }
  for (auto& slot : slots) {
    reap(slot);
    if (HasFatalFailure()) return;
  }

  // What the writers said: acknowledged appends must be there; appends in flight at a kill
  // entirely or not at all; nothing else.
  struct Append {
    int64_t n = 0;
    bool acked = false;
    ObjectId manifest;
  };
  std::map<std::pair<int64_t, int64_t>, Append> intents;
  std::map<std::string, ObjectId> snapshots;  // acknowledged
  std::map<std::string, ObjectId> snapshot_intents;
  uint64_t acked_appends = 0, rebased = 0;
  for (const auto& [w, log] : logs) {
    for (const auto& line : log) {
      auto t = Split(line);
      if (t[0] == "R") continue;
      const int64_t s = std::stoll(t[1]);
      if (t[0] == "IA") {
        intents[{w, s}] = Append{std::stoll(t[2]), false, {}};
      } else if (t[0] == "DA") {
        Append& a = intents.at({w, s});
        a.acked = true;
        a.manifest = *ObjectId::Parse(t[2]);
        ++acked_appends;
        if (std::stoi(t[3]) > 1) ++rebased;
      } else if (t[0] == "IS") {
        snapshot_intents[t[2]] = *ObjectId::Parse(t[3]);
      } else if (t[0] == "DS") {
        snapshots[t[2]] = snapshot_intents.at(t[2]);
      } else {
        FAIL() << "unexpected message " << line;
      }
    }
  }

  View v;
  ASSERT_TRUE(OpenView(&v));
  auto report = Verify(*v.store, kName);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_TRUE(report->problems.empty())
      << report->problems.size() << " problems:" << Problems(*report);
  std::set<ObjectId> history;
  size_t merges = 0;
  ASSERT_TRUE(v.ds->History([&](const CommitInfo& c) {
                    history.insert(c.manifest);
                    if (c.parents.size() > 1) ++merges;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(merges, 0u);
  for (const auto& [key, a] : intents) {
    if (a.acked) {
      ASSERT_TRUE(history.count(a.manifest))
          << "acknowledged append " << key.first << ":" << key.second << " ("
          << a.manifest.ToString() << ") is not in the branch's history";
    }
  }
  auto records = ScanAll(*v.ds);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), v.ds->Count());
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> groups;
  for (const auto& [anchor, tag] : *records) groups[{tag.w, tag.s}].push_back(tag.i);
  uint64_t landed_in_flight = 0, in_flight = 0;
  for (const auto& [key, a] : intents) in_flight += a.acked ? 0 : 1;
  for (const auto& [key, rows] : groups) {
    auto it = intents.find(key);
    ASSERT_NE(it, intents.end()) << "records of an append never made: " << key.first << ":"
                                 << key.second;
    std::vector<int64_t> want(static_cast<size_t>(it->second.n));
    std::iota(want.begin(), want.end(), 0);
    std::vector<int64_t> got = rows;
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, want) << "append " << key.first << ":" << key.second
                         << " is partial or duplicated";
    if (!it->second.acked) ++landed_in_flight;
  }
  for (const auto& [key, a] : intents) {
    if (a.acked) {
      ASSERT_TRUE(groups.count(key))
          << "acknowledged append lost: " << key.first << ":" << key.second;
    }
  }
  // One manifest per landed append, plus the creation: nothing applied twice.
  ASSERT_EQ(history.size(), groups.size() + 1);
  for (const auto& [label, at] : snapshot_intents) {
    auto s = Dataset::OpenAt(v.store, kName, label);
    if (!snapshots.count(label) && !s.ok()) {  // in flight at a kill: may not exist
      ASSERT_EQ(s.status().code(), StatusCode::kNotFound) << s.status().ToString();
      continue;
    }
    ASSERT_TRUE(s.ok()) << "snapshot " << label << ": " << s.status().ToString();
    ASSERT_EQ((*s)->head(), at) << "snapshot " << label;
    ASSERT_TRUE(history.count(at));
  }
  // And a new commit lands.
  auto info = v.ds->AppendMany(TagBatch(v.ds->schema(), -1, 0, 2));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->count, records->size() + 2);
  report = Verify(*v.store, kName);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty()) << Problems(*report);
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  RecordProperty("kills", static_cast<int>(kills));
  std::cout << kills << " kills of 4 concurrent writers in " << static_cast<int>(secs)
            << " s: " << acked_appends << " acknowledged appends (" << rebased << " rebased); "
            << in_flight << " appends in flight at a kill, of which " << landed_in_flight
            << " had landed; " << snapshots.size() << " snapshots, " << records->size()
            << " records, " << history.size() << " manifests, mean step "
            << static_cast<int>(step_us / 1000) << " ms\n";
  EXPECT_GT(acked_appends, 0u);
}

}  // namespace
}  // namespace dreamdb
