// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// file:// against the conformance suite, plus its layout, refusals and failure paths
// (spec/05-backend.md §8, spec/06-refs.md §7).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "src/store/local/file_backend.h"
#include "src/store/testing/conformance.h"

namespace dreamdb {
namespace {

namespace fs = std::filesystem;

std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr && *base ? base : "/tmp") + "/dreamdb-" + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// Temp directories made by the conformance factory, removed after each test.
std::mutex g_dirs_mu;
std::vector<std::string> g_dirs;  // guarded by g_dirs_mu

StoreFactory FileFactory() {
  StoreFactory f;
  f.name = "File";
  f.reopen_by_uri = true;
  f.make = []() -> std::unique_ptr<Store> {
    std::string dir = MakeTempDir("conformance");
    if (dir.empty()) return nullptr;
    {
      std::lock_guard lock(g_dirs_mu);
      g_dirs.push_back(dir);
    }
    // A not-yet-existing subdirectory exercises creation of the root as well.
    auto store = Store::Open("file://" + dir + "/store");
    return store.ok() ? std::move(*store) : nullptr;
  };
  f.cleanup = [] {
    std::lock_guard lock(g_dirs_mu);
    for (const std::string& d : g_dirs) {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
    g_dirs.clear();
  };
  // Bit rot in place: overwrite the object file's bytes directly.
  f.corrupt = [](Store& store, const ObjectId& id, ByteView bytes) {
    auto* backend = dynamic_cast<FileBackend*>(&store.object_backend());
    ASSERT_NE(backend, nullptr);
    WriteFile(backend->ObjectPath(id), bytes);
  };
  return f;
}

}  // namespace

DREAMDB_INSTANTIATE_STORE_CONFORMANCE(FileStore, FileFactory());

namespace {

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("file-test");
    ASSERT_FALSE(dir_.empty());
    root_ = dir_ + "/store";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::shared_ptr<FileBackend> OpenBackend(FileBackendOptions options = {}) {
    auto backend = FileBackend::Open(root_, std::move(options));
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? *backend : nullptr;
  }
  std::unique_ptr<Store> OpenStore(FileBackendOptions options = {}) {
    auto backend = OpenBackend(std::move(options));
    if (!backend) return nullptr;
    return Store::FromBackends("file://" + root_, backend, backend);
  }
  std::vector<std::string> Entries(const std::string& sub) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(root_ + "/" + sub)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
  std::string root_;
};

TEST_F(FileStoreTest, LayoutOnDisk) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(ReadFile(root_ + "/dreamdb-store"), "dreamdb-store 1\n");
  for (const char* sub : {"objects", "refs", "locks", "tmp"}) {
    EXPECT_TRUE(fs::is_directory(root_ + "/" + sub)) << sub;
  }
  auto id = store->Put("layout");
  ASSERT_TRUE(id.ok());
  const std::string object_path = root_ + "/objects/" + id->ShardPrefix() + "/" + id->ToString();
  EXPECT_EQ(ReadFile(object_path), "layout");
  ASSERT_TRUE(store->CreateRef("ds/branches/main", *id).ok());
  EXPECT_EQ(
      ReadFile(root_ + "/refs/ds~branches~main"),
      "dreamdb-ref 1\ntarget " + id->ToString() + "\nwriter " + FileBackend::WriterNonce() + "\n");
  EXPECT_EQ(Entries("locks"), std::vector<std::string>{"ds~branches~main"});
  EXPECT_TRUE(Entries("tmp").empty()) << "temp files are renamed or removed";
  // Deleting the ref removes its lock file too.
  ASSERT_TRUE(store->DeleteRef("ds/branches/main", *id).ok());
  EXPECT_TRUE(Entries("refs").empty());
  EXPECT_TRUE(Entries("locks").empty());
  EXPECT_TRUE(Entries("tmp").empty());
}

TEST_F(FileStoreTest, WriterNonceIsHexAndDiffersInAForkedChild) {
  std::string mine = FileBackend::WriterNonce();
  ASSERT_EQ(mine.size(), 32u);
  EXPECT_EQ(mine.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(FileBackend::WriterNonce(), mine);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string child = FileBackend::WriterNonce();
    ssize_t n = write(fds[1], child.data(), child.size());
    _exit(n == 32 ? 0 : 1);
  }
  close(fds[1]);
  char buf[32];
  ASSERT_EQ(read(fds[0], buf, 32), 32);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(std::string(buf, 32), mine);
}

TEST_F(FileStoreTest, OpensAnExistingEmptyDirectoryAndNestedNewPaths) {
  ASSERT_TRUE(fs::create_directory(root_));
  EXPECT_NE(OpenStore(), nullptr);
  root_ = dir_ + "/a/b/c";
  EXPECT_NE(OpenStore(), nullptr);
  EXPECT_EQ(ReadFile(root_ + "/dreamdb-store"), "dreamdb-store 1\n");
}

TEST_F(FileStoreTest, RefusesNonEmptyDirectoryWithoutMarker) {
  ASSERT_TRUE(fs::create_directory(root_));
  WriteFile(root_ + "/holiday.jpg", "jpeg");
  auto backend = FileBackend::Open(root_);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(backend.status().message(),
            "directory '" + root_ +
                "' is not empty and is not a DreamDB store (no 'dreamdb-store' file; found "
                "'holiday.jpg'); refusing to write into it");
  EXPECT_EQ(Entries(""), std::vector<std::string>{"holiday.jpg"}) << "nothing written";
}

// A reader must not turn a mistyped path into a new, empty store (spec/05 §2.5).
TEST_F(FileStoreTest, MustExistOpenOfAMissingStoreCreatesNothing) {
  StoreOptions must_exist;
  must_exist.open_mode = StoreOpenMode::kMustExist;
  auto missing = Store::Open("file://" + root_ + "/typo", must_exist);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "no DreamDB store at '" + root_ + "/typo' (the directory does not exist)");
  EXPECT_FALSE(fs::exists(root_)) << "not even the parent was created";

  ASSERT_TRUE(fs::create_directory(root_));
  auto empty = Store::Open(root_, must_exist);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(empty.status().message(),
            "no DreamDB store at '" + root_ + "' (the directory is empty)");
  EXPECT_TRUE(fs::is_empty(root_)) << "nothing written into the empty directory";

  WriteFile(root_ + "/holiday.jpg", "jpeg");
  auto stranger = Store::Open(root_, must_exist);
  EXPECT_EQ(stranger.status().code(), StatusCode::kInvalidArgument);
  fs::remove(root_ + "/holiday.jpg");

  // Creating, then opening in either mode, works; memory:// has nothing to create.
  ASSERT_TRUE(Store::Open(root_).ok());
  auto existing = Store::Open(root_, must_exist);
  ASSERT_TRUE(existing.ok()) << existing.status().ToString();
  EXPECT_TRUE(Store::Open("memory://", must_exist).ok());
  EXPECT_TRUE(Store::Open("memory://must-exist-test", must_exist).ok());
}

TEST_F(FileStoreTest, RefusesAFileAsRoot) {
  WriteFile(root_, "not a directory");
  auto backend = FileBackend::Open(root_);
  EXPECT_EQ(backend.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(backend.status().message(), "store root: '" + root_ + "' is not a directory");
}

TEST_F(FileStoreTest, MarkerVersions) {
  ASSERT_TRUE(fs::create_directory(root_));
  WriteFile(root_ + "/dreamdb-store", "dreamdb-store 2\n");
  auto newer = FileBackend::Open(root_);
  EXPECT_EQ(newer.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(newer.status().message(),
            "store at '" + root_ + "' has layout version 2; this build supports version 1");
  for (std::string bad : {"dreamdb-store 1", "dreamdb-store 01\n", "dreamdb-store 1\nx", "",
                          "dreamdb-store x\n", "dreamdb-store 0\n"}) {
    WriteFile(root_ + "/dreamdb-store", bad);
    auto malformed = FileBackend::Open(root_);
    EXPECT_EQ(malformed.status().code(), StatusCode::kCorrupt) << bad;
    EXPECT_NE(malformed.status().message().find("is malformed"), std::string::npos);
  }
}

TEST_F(FileStoreTest, ConcurrentOpensOfANewDirectory) {
  constexpr int kThreads = 8;
  std::barrier sync(kThreads);
  std::atomic<int> ok{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      sync.arrive_and_wait();
      auto backend = FileBackend::Open(root_);
      if (backend.ok()) {
        ok.fetch_add(1);
      } else {
        errors[t] = backend.status().ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads);
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(ReadFile(root_ + "/dreamdb-store"), "dreamdb-store 1\n");
  for (const std::string& e : Entries("")) {
    EXPECT_EQ(e.find(".dreamdb-store.init."), std::string::npos) << "leftover " << e;
  }
}

TEST_F(FileStoreTest, CorruptedRefFiles) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->Put("target");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store->CreateRef("ds/branches/main", *id).ok());
  const std::string path = root_ + "/refs/ds~branches~main";
  const std::string good = ReadFile(path);
  const std::string nonce(32, 'a');
  const std::string t = "target " + id->ToString() + "\n";
  const std::vector<std::string> bad = {
      "",
      "dreamdb-ref 1\n",
      "dreamdb-ref 1\n" + t,                               // no writer line
      "dreamdb-ref 1\n" + t + "writer " + nonce,           // no final newline
      "dreamdb-ref 1\n" + t + "writer " + nonce + "\n\n",  // extra line
      "dreamdb-ref 1\n" + t + "writer " + std::string(31, 'a') + "\n",
      "dreamdb-ref 1\n" + t + "writer " + std::string(32, 'A') + "\n",
      "dreamdb-ref 1\ntarget bnotanid\nwriter " + nonce + "\n",
      "dreamdb-ref 1\ntarget  " + id->ToString() + "\nwriter " + nonce + "\n",
      "dreamdb-ref 1\r\n" + t + "writer " + nonce + "\n",
      "dreamdb-ref 01\n" + t + "writer " + nonce + "\n",
      "DREAMDB-REF 1\n" + t + "writer " + nonce + "\n",
      "writer " + nonce + "\n" + "dreamdb-ref 1\n" + t,
      good.substr(0, good.size() - 1) + std::string(5000, ' ') + "\n",
  };
  for (const std::string& content : bad) {
    WriteFile(path, content);
    auto ref = store->ReadRef("ds/branches/main");
    ASSERT_FALSE(ref.ok()) << content;
    EXPECT_EQ(ref.status().code(), StatusCode::kCorrupt) << content;
    EXPECT_EQ(ref.status().message().rfind("ref 'ds/branches/main' is corrupt: ", 0), 0u)
        << ref.status().message();
    EXPECT_NE(ref.status().message().find(path), std::string::npos) << ref.status().message();
    EXPECT_EQ(store->UpdateRef("ds/branches/main", *id, *id).code(), StatusCode::kCorrupt);
    EXPECT_EQ(store->ListRefs("", [](const RefValue&) { return true; }).code(),
              StatusCode::kCorrupt);
  }
  WriteFile(path, "dreamdb-ref 2\nwhatever\n");
  EXPECT_EQ(store->ReadRef("ds/branches/main").status().code(), StatusCode::kUnsupported);
  // Another writer's nonce is fine.
  WriteFile(path, "dreamdb-ref 1\n" + t + "writer " + nonce + "\n");
  auto ref = store->ReadRef("ds/branches/main");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->target, *id);
}

TEST_F(FileStoreTest, StrayAndTempFilesAreIgnored) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->Put("real");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store->CreateRef("main", *id).ok());
  // What a crash leaves behind, and what a careless user might drop in.
  WriteFile(root_ + "/tmp/obj." + std::string(32, 'f') + ".7", "half an obj");
  WriteFile(root_ + "/tmp/ref." + std::string(32, 'f') + ".8", "dreamdb-ref 1\n");
  WriteFile(root_ + "/objects/README", "x");
  fs::create_directory(root_ + "/objects/zz");
  WriteFile(root_ + "/objects/zz/" + id->ToString(), "x");
  WriteFile(root_ + "/objects/" + id->ShardPrefix() + "/notes.txt", "x");
  ObjectId other = ObjectId::Of("misplaced");
  std::string wrong_shard = other.ShardPrefix() == "00" ? "01" : "00";
  fs::create_directory(root_ + "/objects/" + wrong_shard);
  WriteFile(root_ + "/objects/" + wrong_shard + "/" + other.ToString(), "misplaced");
  WriteFile(root_ + "/refs/.hidden", "x");
  WriteFile(root_ + "/refs/bad name", "x");
  WriteFile(root_ + "/refs/a~~b", "x");
  WriteFile(root_ + "/locks/junk", "");

  std::vector<ObjectId> listed;
  ASSERT_TRUE(store
                  ->ListObjects("",
                                [&](const ObjectInfo& info) {
                                  listed.push_back(info.id);
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(listed, std::vector<ObjectId>{*id});
  std::vector<std::string> refs;
  ASSERT_TRUE(store
                  ->ListRefs("",
                             [&](const RefValue& r) {
                               refs.push_back(r.name);
                               return true;
                             })
                  .ok());
  EXPECT_EQ(refs, std::vector<std::string>{"main"});
  auto id2 = store->Put("more");
  ASSERT_TRUE(id2.ok());
  EXPECT_TRUE(store->UpdateRef("main", *id, *id2).ok());
}

TEST_F(FileStoreTest, PutRepairsAnObjectOfTheWrongSize) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto id = store->Put("complete object");
  ASSERT_TRUE(id.ok());
  const std::string path = root_ + "/objects/" + id->ShardPrefix() + "/" + id->ToString();
  WriteFile(path, "complete");
  EXPECT_EQ(store->Get(*id).status().code(), StatusCode::kCorrupt);
  ASSERT_TRUE(store->Put("complete object").ok());
  auto data = store->Get(*id);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(*data, "complete object");
}

TEST_F(FileStoreTest, RePutRefreshesAnOldObjectsTime) {
  std::atomic<int> utime_error{0};
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string&) {
    return call == "utime" ? utime_error.load() : 0;
  };
  auto store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  auto id = store->Put("old object");
  ASSERT_TRUE(id.ok());
  const std::string path = root_ + "/objects/" + id->ShardPrefix() + "/" + id->ToString();
  const timespec y2000[2] = {{946684800, 0}, {946684800, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), y2000, 0), 0);
  EXPECT_EQ(store->Head(*id)->modified_unix_ms, 946684800000);
  ASSERT_TRUE(store->Put("old object").ok());
  EXPECT_GT(store->Head(*id)->modified_unix_ms, 946684800000 + 1000LL * 86400 * 365 * 20);
  // Another user's file cannot be touched: the Put stores a fresh copy instead.
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), y2000, 0), 0);
  utime_error = EPERM;
  ASSERT_TRUE(store->Put("old object").ok());
  EXPECT_GT(store->Head(*id)->modified_unix_ms, 946684800000 + 1000LL * 86400 * 365 * 20);
  EXPECT_EQ(*store->Get(*id), "old object");
  EXPECT_TRUE(Entries("tmp").empty());
  // Any other failure is reported.
  utime_error = EROFS;
  Status st = store->Put("old object").status();
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("Read-only file system"), std::string::npos) << st.message();
}

TEST_F(FileStoreTest, OpenByUriForms) {
  ASSERT_EQ(chdir(dir_.c_str()), 0);
  auto relative = Store::Open("store");
  ASSERT_TRUE(relative.ok()) << relative.status().ToString();
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  EXPECT_EQ((*relative)->uri(), "file://" + std::string(cwd) + "/store");
  auto id = (*relative)->Put("via relative path");
  ASSERT_TRUE(id.ok());
  auto absolute = Store::Open((*relative)->uri());
  ASSERT_TRUE(absolute.ok());
  EXPECT_TRUE((*absolute)->Get(*id).ok());
  ASSERT_EQ(chdir("/"), 0);
}

TEST_F(FileStoreTest, ReopeningSharesOneBackendPerRoot) {
  auto a = Store::Open(root_);
  auto b = Store::Open("file://" + root_ + "/");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(&(*a)->object_backend(), &(*b)->object_backend());
  const void* first = &(*a)->object_backend();
  a->reset();
  b->reset();
  auto c = Store::Open(root_);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->Put("after reopen").ok());
  (void)first;  // a new backend may or may not reuse the address; only liveness matters
}

// ---- Failure paths: errno -> status (spec/05-backend.md §6.4) ----

struct InjectedErrno {
  std::string call;
  int err;
  StatusCode code;
  std::string text;  // strerror text expected in the message
};

TEST_F(FileStoreTest, InjectedErrorsOnPut) {
  const std::vector<InjectedErrno> cases = {
      {"write", ENOSPC, StatusCode::kIoError, "No space left on device"},
      {"write", EDQUOT, StatusCode::kIoError, "Disk quota exceeded"},
      {"open", EROFS, StatusCode::kIoError, "Read-only file system"},
      {"open", EACCES, StatusCode::kIoError, "Permission denied"},
      {"open", EMFILE, StatusCode::kUnavailable, "Too many open files"},
      {"fsync", EIO, StatusCode::kIoError, "Input/output error"},
      {"rename", EROFS, StatusCode::kIoError, "Read-only file system"},
      {"close", EIO, StatusCode::kIoError, "Input/output error"},
  };
  for (const InjectedErrno& c : cases) {
    std::atomic<bool> armed{true};
    FileBackendOptions options;
    options.fault_hook = [&](std::string_view call, const std::string& path) {
      bool hit = armed && call == c.call && path.rfind(root_ + "/tmp/", 0) == 0;
      if (c.call == "rename") hit = armed && call == c.call;
      return hit ? c.err : 0;
    };
    auto store = OpenStore(options);
    ASSERT_NE(store, nullptr);
    std::string data = "payload for " + c.call + " " + std::to_string(c.err);
    // The backend's durable Put: Store::Put defers the fsyncs to Sync (spec/05 §8.3.5).
    Status st = store->object_backend().Put(ObjectId::Of(data), data);
    EXPECT_EQ(st.code(), c.code) << c.call << ": " << st.ToString();
    EXPECT_NE(st.message().find(c.text), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(root_), std::string::npos) << "names the path: " << st.message();
    EXPECT_TRUE(Entries("tmp").empty()) << c.call << ": temp file left behind";
    armed = false;
    EXPECT_EQ(store->Get(ObjectId::Of(data)).status().code(), StatusCode::kNotFound) << c.call;
    EXPECT_TRUE(store->Put(data).ok()) << c.call;
  }
}

TEST_F(FileStoreTest, InjectedErrorsOnRefsAndReads) {
  std::string fail_call;
  int fail_err = 0;
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string&) {
    return call == fail_call ? fail_err : 0;
  };
  auto store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  auto a = store->Put("a");
  auto b = store->Put("b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(store->CreateRef("main", *a).ok());

  fail_call = "flock", fail_err = ENOLCK;
  Status st = store->UpdateRef("main", *a, *b);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(root_ + "/locks/main"), std::string::npos) << st.message();

  fail_call = "rename", fail_err = ENOSPC;
  st = store->UpdateRef("main", *a, *b);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find("No space left on device"), std::string::npos);

  fail_call = "link", fail_err = EROFS;
  st = store->CreateRef("other", *a);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(root_ + "/refs/other"), std::string::npos) << st.message();

  fail_call = "read", fail_err = EIO;
  EXPECT_EQ(store->Get(*a).status().code(), StatusCode::kIoError);
  EXPECT_EQ(store->ReadRef("main").status().code(), StatusCode::kIoError);

  fail_call = "open", fail_err = EACCES;
  auto got = store->Get(*a);
  EXPECT_EQ(got.status().code(), StatusCode::kIoError);
  EXPECT_NE(got.status().message().find("Permission denied"), std::string::npos);

  fail_call = "opendir", fail_err = EACCES;
  EXPECT_EQ(store->ListObjects("", [](const ObjectInfo&) { return true; }).code(),
            StatusCode::kIoError);
  EXPECT_EQ(store->ListRefs("", [](const RefValue&) { return true; }).code(), StatusCode::kIoError);

  fail_call = "unlink", fail_err = EROFS;
  EXPECT_EQ(store->DeleteObject(*a).code(), StatusCode::kIoError);
  fail_call = "unlink", fail_err = ENOENT;
  EXPECT_TRUE(store->DeleteObject(*b).ok()) << "deleting an absent object succeeds";

  fail_call = "";
  auto ref = store->ReadRef("main");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->target, *a) << "failed swaps changed nothing";
  EXPECT_TRUE(Entries("tmp").empty());
  EXPECT_TRUE(store->UpdateRef("main", *a, *b).ok());
}

TEST_F(FileStoreTest, InjectedEintrIsRetried) {
  std::atomic<int> interrupts{0};
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string&) {
    // Every call is interrupted twice before it goes through.
    static thread_local int n = 0;
    if (++n % 3 != 0) {
      interrupts.fetch_add(1);
      return EINTR;
    }
    return 0;
  };
  auto store = OpenStore(options);
  ASSERT_NE(store, nullptr);
  auto a = store->Put("interrupted");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(store->CreateRef("main", *a).ok());
  auto ref = store->ReadRef("main");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  auto data = store->Get(*a);
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(*data, "interrupted");
  EXPECT_GT(interrupts.load(), 10);
}

// A real read-only file system: a private mount namespace with a read-only bind mount
// of the store (root ignores permission bits, but not EROFS).
TEST_F(FileStoreTest, ReadOnlyBindMount) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    auto id = store->Put("readable");
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(store->CreateRef("main", *id).ok());
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    auto report = [&](const std::string& s) {
      ssize_t n = write(fds[1], s.data(), s.size());
      (void)n;
    };
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount(root_.c_str(), root_.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
        mount(nullptr, root_.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      report(std::string("SKIP ") + strerror(errno));
      _exit(0);
    }
    std::string out;
    auto opened = Store::Open(root_);
    if (!opened.ok()) {
      report("open failed: " + opened.status().ToString());
      _exit(1);
    }
    Store& store = **opened;
    auto ref = store.ReadRef("main");
    if (!ref.ok() || !store.Get(ref->target).ok()) out += "reads failed;";
    Status put = store.Put("new bytes").status();
    if (put.code() != StatusCode::kIoError ||
        put.message().find("Read-only file system") == std::string::npos ||
        put.message().find(root_) == std::string::npos) {
      out += "put: " + put.ToString() + ";";
    }
    Status create = store.CreateRef("other", ref.ok() ? ref->target : ObjectId());
    if (create.code() != StatusCode::kIoError) out += "create: " + create.ToString() + ";";
    Status swap = store.UpdateRef("main", ref.ok() ? ref->target : ObjectId(),
                                  ref.ok() ? ref->target : ObjectId());
    if (swap.code() != StatusCode::kIoError) out += "swap: " + swap.ToString() + ";";
    report(out.empty() ? "OK" : out);
    _exit(0);
  }
  close(fds[1]);
  std::string result;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) result.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  // Needs a private mount namespace (root, as on the project's machines and CI).
  ASSERT_NE(result.rfind("SKIP", 0), 0u) << "cannot make a read-only mount: " << result;
  EXPECT_EQ(result, "OK");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// Without root, permission bits give EACCES; as root they do not apply (see above).

}  // namespace
}  // namespace dreamdb

namespace dreamdb {
namespace {

TEST(FileStoreSyncTest, UnsyncedPutsAreVisibleAndSyncedBeforeARefMoves) {
  std::string root = ::testing::TempDir() + "/sync_" + std::to_string(getpid());
  std::unique_ptr<Store> store = *Store::Open("file://" + root);
  auto id = store->Put("deferred");
  ASSERT_TRUE(id.ok());
  // Visible to another handle (another process would see the same file) at once.
  std::unique_ptr<Store> other = *Store::Open("file://" + root);
  EXPECT_EQ(*other->Get(*id), "deferred");
  EXPECT_TRUE(store->Sync().ok());
  EXPECT_TRUE(store->Sync().ok());  // nothing pending: a no-op
  EXPECT_TRUE(store->CreateRef("d/branches/main", *id).ok());
}

}  // namespace
}  // namespace dreamdb

namespace dreamdb {
namespace {

// Sync used to call syncfs(2), which flushes the whole file system: a small commit waited
// for every dirty page of a bulk writer beside it. Now it fsyncs exactly the objects this
// handle put unsynced (and their shard directories), nothing else.
TEST(FileStoreSyncTest, SyncFsyncsOnlyTheObjectsItPutNotTheFileSystem) {
  std::string root = ::testing::TempDir() + "/sync_files_" + std::to_string(getpid());
  std::mutex mu;
  std::set<std::string> fsynced;
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    if (call == "fsync") {
      std::lock_guard<std::mutex> lock(mu);
      fsynced.insert(path);
    }
    return 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  // Enough objects for the parallel path, spread over several shards.
  std::set<std::string> want;
  for (int i = 0; i < 40; ++i) {
    std::string data = "object " + std::to_string(i);
    ObjectId id = ObjectId::Of(data);
    ASSERT_TRUE((*backend)->PutUnsynced(id, data).ok());
    want.insert((*backend)->ObjectPath(id));
    want.insert(root + "/objects/" + id.ShardPrefix());
  }
  want.insert(root + "/objects");  // the new shard directories' entries
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& p : fsynced) EXPECT_EQ(want.count(p), 0u) << "fsynced before Sync: " << p;
    fsynced.clear();
  }
  ASSERT_TRUE((*backend)->Sync().ok());
  EXPECT_EQ(fsynced, want);
  fsynced.clear();
  ASSERT_TRUE((*backend)->Sync().ok());  // nothing pending
  EXPECT_TRUE(fsynced.empty());
}

// An object another handle wrote (and has not synced) that this handle's Put finds present
// is still made durable by this handle's Sync before its ref moves.
TEST(FileStoreSyncTest, SyncFsyncsAnObjectFoundPresentFromAnotherWriter) {
  std::string root = ::testing::TempDir() + "/sync_present_" + std::to_string(getpid());
  std::mutex mu;  // the hook runs on the I/O pool's threads, several at once
  std::set<std::string> fsynced;
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    if (call == "fsync") {
      std::lock_guard<std::mutex> lock(mu);
      fsynced.insert(path);
    }
    return 0;
  };
  auto writer = FileBackend::Open(root);
  auto second = FileBackend::Open(root, options);
  ASSERT_TRUE(writer.ok() && second.ok());
  std::string data = "shared object";
  ObjectId id = ObjectId::Of(data);
  ASSERT_TRUE((*writer)->PutUnsynced(id, data).ok());
  ASSERT_TRUE((*second)->PutUnsynced(id, data).ok());
  ASSERT_TRUE((*second)->Sync().ok());
  EXPECT_EQ(fsynced.count((*second)->ObjectPath(id)), 1u);
  EXPECT_EQ(fsynced.count(root + "/objects/" + id.ShardPrefix()), 1u);
}

// A failed fsync fails the Sync (naming the file), so the ref does not move, and the
// object stays pending: the next Sync flushes it again before it reports OK.
TEST(FileStoreSyncTest, FailedFsyncKeepsTheObjectPendingAndTheRefUnmoved) {
  std::string root = ::testing::TempDir() + "/sync_fail_" + std::to_string(getpid());
  std::string fail_path;
  std::atomic<int> fsyncs_of_object{0};  // the hook runs on the I/O pool's threads
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    if (call != "fsync" || path != fail_path) return 0;
    return fsyncs_of_object.fetch_add(1) == 0 ? EIO : 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok());
  std::string data = "will fail once";
  ObjectId id = ObjectId::Of(data);
  fail_path = (*backend)->ObjectPath(id);
  ASSERT_TRUE((*backend)->PutUnsynced(id, data).ok());
  Status st = (*backend)->Sync();
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(fail_path), std::string::npos) << st.message();
  EXPECT_TRUE((*backend)->Sync().ok());
  EXPECT_EQ(fsyncs_of_object, 2);
  EXPECT_TRUE((*backend)->Sync().ok());
  EXPECT_EQ(fsyncs_of_object, 2);
}

// A failed commit removes the objects it created; the handle must not keep failing every
// later Sync (and so every later commit) on the files that are gone.
TEST(FileStoreSyncTest, ObjectDeletedBeforeSyncDoesNotFailLaterSyncs) {
  std::string root = ::testing::TempDir() + "/sync_deleted_" + std::to_string(getpid());
  auto backend = FileBackend::Open(root);
  ASSERT_TRUE(backend.ok());
  std::string data = "removed by a failed commit's cleanup";
  ObjectId id = ObjectId::Of(data);
  ASSERT_TRUE((*backend)->PutUnsynced(id, data).ok());
  ASSERT_TRUE(static_cast<ObjectBackend&>(**backend).Delete(id).ok());
  Status st = (*backend)->Sync();
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::string next = "the next commit";
  ASSERT_TRUE((*backend)->PutUnsynced(ObjectId::Of(next), next).ok());
  st = (*backend)->Sync();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace dreamdb

namespace dreamdb {
namespace {

// A ref move used to wait for three rounds of fsyncs one after another: the objects, then
// the new ref file, then refs/. The ref file does not depend on the ref's current value,
// so it is now written before the lock and fsynced in the objects' round: two rounds. The
// order that makes a crash safe is kept: every object and the ref file are durable before
// the rename into refs/, and refs/ is fsynced after it, before OK.
TEST(FileStoreSyncTest, RefMoveFsyncsTheRefFileInTheObjectsRoundBeforeTheRename) {
  std::string root = ::testing::TempDir() + "/sync_round_" + std::to_string(getpid());
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> calls;
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    std::lock_guard<std::mutex> lock(mu);
    calls.emplace_back(std::string(call), path);
    return 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok());
  std::shared_ptr<FileBackend> fb = *backend;
  std::unique_ptr<Store> store = Store::FromBackends("file://" + root, fb, fb);
  auto first = store->Put("first");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(store->CreateRef("d/branches/main", *first).ok());
  std::vector<ObjectId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(*store->Put("object " + std::to_string(i)));
  {
    std::lock_guard<std::mutex> lock(mu);
    calls.clear();
  }
  ASSERT_TRUE(store->UpdateRef("d/branches/main", *first, ids.back()).ok());
  const std::string ref_path = root + "/refs/d~branches~main";
  size_t rename_at = calls.size(), lock_at = calls.size();
  std::string tmp;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].first == "rename" && rename_at == calls.size()) rename_at = i;
    if (calls[i].first == "flock" && lock_at == calls.size()) lock_at = i;
  }
  ASSERT_LT(rename_at, calls.size());
  // The temp ref file is the rename's source: it is found by what was fsynced before.
  std::set<std::string> fsynced_before_lock, fsynced_before_rename;
  for (size_t i = 0; i < rename_at; ++i) {
    if (calls[i].first != "fsync") continue;
    fsynced_before_rename.insert(calls[i].second);
    if (i < lock_at) fsynced_before_lock.insert(calls[i].second);
  }
  for (const ObjectId& id : ids) {
    EXPECT_EQ(fsynced_before_lock.count(fb->ObjectPath(id)), 1u) << id.ToString();
  }
  size_t tmp_refs = 0;
  for (const auto& p : fsynced_before_lock) tmp_refs += p.find("/tmp/ref.") != std::string::npos;
  EXPECT_EQ(tmp_refs, 1u) << "the new ref file is fsynced with the objects, before the lock";
  // After the rename: exactly one fsync, of refs/.
  std::vector<std::string> after;
  for (size_t i = rename_at + 1; i < calls.size(); ++i) {
    if (calls[i].first == "fsync") after.push_back(calls[i].second);
  }
  EXPECT_EQ(after, std::vector<std::string>{root + "/refs"});
  EXPECT_EQ(store->ReadRef("d/branches/main")->target, ids.back());
  // Nothing left in tmp/.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(root + "/tmp"),
                          std::filesystem::directory_iterator{}),
            0);
}

// Group commit: threads moving different refs at once share fsyncs of refs/ and of the
// objects; every move that returned OK is there, pointing at an object that reads back.
TEST(FileStoreSyncTest, ConcurrentRefMovesShareFsyncsAndLoseNothing) {
  std::string root = ::testing::TempDir() + "/sync_group_" + std::to_string(getpid());
  std::atomic<int> refs_dir_fsyncs{0};
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    if (call == "fsync" && path == root + "/refs") refs_dir_fsyncs.fetch_add(1);
    return 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok());
  std::shared_ptr<FileBackend> fb = *backend;
  std::unique_ptr<Store> store = Store::FromBackends("file://" + root, fb, fb);
  constexpr int kThreads = 8, kMoves = 40;
  std::vector<ObjectId> head(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    head[t] = *store->Put("start " + std::to_string(t));
    ASSERT_TRUE(store->CreateRef("g/branches/b" + std::to_string(t), head[t]).ok());
  }
  refs_dir_fsyncs = 0;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int m = 0; m < kMoves; ++m) {
        auto id = store->Put("thread " + std::to_string(t) + " move " + std::to_string(m));
        if (!id.ok()) {
          failures++;
          continue;
        }
        Status st = store->UpdateRef("g/branches/b" + std::to_string(t), head[t], *id);
        if (!st.ok()) {
          failures++;
          continue;
        }
        head[t] = *id;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(refs_dir_fsyncs.load(), kThreads * kMoves);
  // A fresh handle (as after a restart) sees every last move and its object.
  auto reopened = FileBackend::Open(root);
  ASSERT_TRUE(reopened.ok());
  std::unique_ptr<Store> again = Store::FromBackends("file://" + root, *reopened, *reopened);
  for (int t = 0; t < kThreads; ++t) {
    auto ref = again->ReadRef("g/branches/b" + std::to_string(t));
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    EXPECT_EQ(ref->target, head[t]);
    auto got = again->Get(head[t]);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(*got, "thread " + std::to_string(t) + " move " + std::to_string(kMoves - 1));
  }
}

// A failed fsync of refs/ fails the move it was to make durable (its outcome is unknown
// to the caller), and a later move still works.
TEST(FileStoreSyncTest, FailedRefsDirFsyncFailsTheMoveItCovered) {
  std::string root = ::testing::TempDir() + "/sync_refsdir_" + std::to_string(getpid());
  std::atomic<int> fail_next{0};
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    if (call == "fsync" && path == root + "/refs" && fail_next.exchange(0) != 0) return EIO;
    return 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok());
  std::shared_ptr<FileBackend> fb = *backend;
  std::unique_ptr<Store> store = Store::FromBackends("file://" + root, fb, fb);
  ObjectId a = *store->Put("a"), b = *store->Put("b"), c = *store->Put("c");
  ASSERT_TRUE(store->CreateRef("f/branches/main", a).ok());
  fail_next = 1;
  Status st = store->UpdateRef("f/branches/main", a, b);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(root + "/refs"), std::string::npos) << st.message();
  auto now = store->ReadRef("f/branches/main");
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(store->UpdateRef("f/branches/main", now->target, c).ok());
  EXPECT_EQ(store->ReadRef("f/branches/main")->target, c);
}

// A swap that loses (conflict) or whose objects fail to sync leaves no temp file behind.
TEST(FileStoreSyncTest, LosingOrFailedRefMoveRemovesItsTempFile) {
  std::string root = ::testing::TempDir() + "/sync_tmp_" + std::to_string(getpid());
  std::string fail_path;
  FileBackendOptions options;
  options.fault_hook = [&](std::string_view call, const std::string& path) {
    return call == "fsync" && path == fail_path ? EIO : 0;
  };
  auto backend = FileBackend::Open(root, options);
  ASSERT_TRUE(backend.ok());
  std::shared_ptr<FileBackend> fb = *backend;
  std::unique_ptr<Store> store = Store::FromBackends("file://" + root, fb, fb);
  ObjectId a = *store->Put("a"), b = *store->Put("b");
  ASSERT_TRUE(store->CreateRef("t/branches/main", a).ok());
  EXPECT_EQ(store->UpdateRef("t/branches/main", b, b).code(), StatusCode::kConflict);
  EXPECT_EQ(store->CreateRef("t/branches/main", b).code(), StatusCode::kAlreadyExists);
  ObjectId d = ObjectId::Of(std::string("d"));
  fail_path = fb->ObjectPath(d);
  ASSERT_TRUE(store->Put("d").ok());
  EXPECT_EQ(store->UpdateRef("t/branches/main", a, d).code(), StatusCode::kIoError);
  EXPECT_EQ(store->ReadRef("t/branches/main")->target, a);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(root + "/tmp"),
                          std::filesystem::directory_iterator{}),
            0);
}

}  // namespace
}  // namespace dreamdb

namespace dreamdb {
namespace {

// Reads keep open descriptors of recent objects. An object another handle (or process,
// e.g. GC) deleted must read as absent, not from the cached descriptor of the unlinked
// file; and one put again afterwards reads back.
TEST(FileStoreFdCacheTest, ObjectDeletedByAnotherHandleReadsAsNotFound) {
  std::string root = ::testing::TempDir() + "/fdcache_" + std::to_string(getpid());
  auto reader = FileBackend::Open(root);
  auto deleter = FileBackend::Open(root);
  ASSERT_TRUE(reader.ok() && deleter.ok());
  std::string data = "cached then deleted";
  ObjectId id = ObjectId::Of(data);
  ASSERT_TRUE((*reader)->Put(id, data).ok());
  ASSERT_EQ(*(*reader)->Get(id), data);  // now cached
  ASSERT_EQ(*(*reader)->GetRange(id, 7, 4), "then");
  ASSERT_TRUE(static_cast<ObjectBackend&>(**deleter).Delete(id).ok());
  EXPECT_EQ((*reader)->Get(id).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE((*deleter)->Put(id, data).ok());
  EXPECT_EQ(*(*reader)->Get(id), data);
}

}  // namespace
}  // namespace dreamdb
