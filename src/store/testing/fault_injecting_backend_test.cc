// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/store/testing/fault_injecting_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "src/store/memory/memory_backend.h"

namespace dreamdb {
namespace {

class FaultInjectingBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    inner_ = NewMemoryBackends();
    faults_ = std::make_shared<FaultInjectingBackend>(inner_.objects, inner_.refs);
    store_ = Store::FromBackends("faulty://", faults_, faults_);
  }
  bool InnerHas(ByteView data) { return inner_.objects->Head(ObjectId::Of(data)).ok(); }

  MemoryBackends inner_;
  std::shared_ptr<FaultInjectingBackend> faults_;
  std::unique_ptr<Store> store_;
};

TEST_F(FaultInjectingBackendTest, PassesThroughAndCounts) {
  ASSERT_TRUE(store_->Put("a").ok());
  ASSERT_TRUE(store_->Get(ObjectId::Of("a")).ok());
  ASSERT_TRUE(store_->CreateRef("main", ObjectId::Of("a")).ok());
  EXPECT_EQ(faults_->calls(FaultOp::kPut), 1u);
  EXPECT_EQ(faults_->calls(FaultOp::kGet), 1u);
  EXPECT_EQ(faults_->calls(FaultOp::kHead), 1u);  // CreateRef checks the target
  EXPECT_EQ(faults_->calls(FaultOp::kCreateRef), 1u);
  EXPECT_EQ(faults_->calls(FaultOp::kAny), 4u);
  EXPECT_EQ(faults_->injected(), 0u);
}

TEST_F(FaultInjectingBackendTest, FailsTheNthCallOfOneKindWithoutApplyingIt) {
  faults_->FailNthCall(2, StatusCode::kIoError, FaultOp::kPut);
  EXPECT_TRUE(store_->Get(ObjectId::Of("x")).status().code() == StatusCode::kNotFound);
  EXPECT_TRUE(store_->Put("first").ok());
  Status st = store_->Put("second").status();
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("injected fault: put call 2"), std::string::npos) << st.message();
  EXPECT_FALSE(InnerHas("second"));
  EXPECT_TRUE(store_->Put("third").ok());
  EXPECT_EQ(faults_->calls(FaultOp::kPut), 3u);
  EXPECT_EQ(faults_->injected(), 1u);
}

TEST_F(FaultInjectingBackendTest, FailsTheNthCallOfAnyKind) {
  faults_->FailNthCall(3, StatusCode::kUnavailable);
  EXPECT_TRUE(store_->Put("a").ok());                                                   // 1
  EXPECT_TRUE(store_->Head(ObjectId::Of("a")).ok());                                    // 2
  EXPECT_EQ(store_->Get(ObjectId::Of("a")).status().code(), StatusCode::kUnavailable);  // 3
  EXPECT_TRUE(store_->Get(ObjectId::Of("a")).ok());                                     // 4
}

TEST_F(FaultInjectingBackendTest, RepeatingAndForeverRules) {
  faults_->Inject(
      {FaultOp::kGet, 2, 3, FaultInjectingBackend::Action::kFail, StatusCode::kIoError});
  ASSERT_TRUE(store_->Put("a").ok());
  std::vector<bool> ok;
  for (int i = 0; i < 6; ++i) ok.push_back(store_->Get(ObjectId::Of("a")).ok());
  EXPECT_EQ(ok, (std::vector<bool>{true, false, false, false, true, true}));
  faults_->Inject(
      {FaultOp::kHead, 1, 0, FaultInjectingBackend::Action::kFail, StatusCode::kIoError});
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(store_->Head(ObjectId::Of("a")).ok());
  faults_->ClearFaults();
  EXPECT_TRUE(store_->Head(ObjectId::Of("a")).ok());
}

TEST_F(FaultInjectingBackendTest, LostResponseAppliesTheCall) {
  auto a = store_->Put("a");
  auto b = store_->Put("b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(store_->CreateRef("main", *a).ok());
  faults_->LoseResponseOfNthCall(1, FaultOp::kCompareAndSwap);
  Status st = store_->UpdateRef("main", *a, *b);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  // The swap happened: a retry conflicts, and reading the ref resolves the doubt.
  EXPECT_EQ(store_->UpdateRef("main", *a, *b).code(), StatusCode::kConflict);
  auto ref = store_->ReadRef("main");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->target, *b);
}

TEST_F(FaultInjectingBackendTest, CrashAfterMutations) {
  faults_->CrashAfterMutations(2);
  EXPECT_TRUE(store_->Put("one").ok());
  EXPECT_TRUE(store_->Get(ObjectId::Of("one")).ok());  // reads are not mutations
  EXPECT_TRUE(store_->Put("two").ok());
  EXPECT_FALSE(faults_->crashed());
  EXPECT_EQ(store_->Put("three").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(faults_->crashed());
  EXPECT_FALSE(InnerHas("three"));
  EXPECT_EQ(store_->Get(ObjectId::Of("one")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->ListObjects("", [](const ObjectInfo&) { return true; }).code(),
            StatusCode::kUnavailable);
  faults_->Restart();
  EXPECT_FALSE(faults_->crashed());
  EXPECT_TRUE(store_->Get(ObjectId::Of("one")).ok());
  EXPECT_TRUE(store_->Put("three").ok());
}

TEST_F(FaultInjectingBackendTest, DropUnacknowledgedWrites) {
  ASSERT_TRUE(inner_.objects->Put(ObjectId::Of("preexisting"), "preexisting").ok());
  ASSERT_TRUE(store_->Put("acked").ok());
  faults_->FailNthCall(1, StatusCode::kIoError, FaultOp::kPut);
  EXPECT_FALSE(store_->Put("failed").ok());
  faults_->LoseResponseOfNthCall(1, FaultOp::kPut);
  EXPECT_FALSE(store_->Put("lost").ok());
  EXPECT_TRUE(InnerHas("lost"));
  // Failed re-puts of objects that were already stored do not make them droppable.
  faults_->FailNthCall(1, StatusCode::kIoError, FaultOp::kPut);
  EXPECT_FALSE(store_->Put("acked").ok());
  faults_->LoseResponseOfNthCall(1, FaultOp::kPut);
  EXPECT_FALSE(store_->Put("preexisting").ok());
  // A lost put later acknowledged by a retry is kept.
  faults_->LoseResponseOfNthCall(1, FaultOp::kPut);
  EXPECT_FALSE(store_->Put("retried").ok());
  EXPECT_TRUE(store_->Put("retried").ok());

  ASSERT_TRUE(faults_->DropUnacknowledgedWrites().ok());
  EXPECT_TRUE(InnerHas("acked"));
  EXPECT_TRUE(InnerHas("preexisting"));
  EXPECT_TRUE(InnerHas("retried"));
  EXPECT_FALSE(InnerHas("lost"));
  EXPECT_FALSE(InnerHas("failed"));
}

TEST_F(FaultInjectingBackendTest, ThreadSafeCounting) {
  ASSERT_TRUE(store_->Put("a").ok());
  faults_->Inject(
      {FaultOp::kHead, 1, 100, FaultInjectingBackend::Action::kFail, StatusCode::kUnavailable});
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (!store_->Head(ObjectId::Of("a")).ok()) failed.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 100);
  EXPECT_EQ(faults_->calls(FaultOp::kHead), 8000u);
  EXPECT_EQ(faults_->injected(), 100u);
}

TEST(FaultOpTest, MutatingKinds) {
  EXPECT_TRUE(IsMutating(FaultOp::kPut));
  EXPECT_TRUE(IsMutating(FaultOp::kDeleteObject));
  EXPECT_TRUE(IsMutating(FaultOp::kCreateRef));
  EXPECT_TRUE(IsMutating(FaultOp::kCompareAndSwap));
  EXPECT_TRUE(IsMutating(FaultOp::kDeleteRef));
  EXPECT_FALSE(IsMutating(FaultOp::kGet));
  EXPECT_FALSE(IsMutating(FaultOp::kListRefs));
  EXPECT_EQ(FaultOpName(FaultOp::kCompareAndSwap), "compare_and_swap");
}

}  // namespace
}  // namespace dreamdb
