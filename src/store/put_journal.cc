// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
#include "src/store/put_journal.h"

namespace dreamdb {
namespace {

thread_local PutJournal* current_journal = nullptr;

}  // namespace

PutJournal* PutJournal::Current() { return current_journal; }

PutJournal::Scope::Scope(PutJournal* journal) : previous_(current_journal) {
  current_journal = journal;
}

PutJournal::Scope::~Scope() { current_journal = previous_; }

void PutJournal::RecordCreated(const Created& c) {
  for (PutJournal* j = this; j != nullptr; j = j->parent_) {
    std::lock_guard<std::mutex> lock(j->mu_);
    j->created_.push_back(c);
  }
}

void PutJournal::RecordExisting(const ObjectId& id) {
  for (PutJournal* j = this; j != nullptr; j = j->parent_) {
    std::lock_guard<std::mutex> lock(j->mu_);
    j->existing_.push_back(id);
  }
}

std::vector<PutJournal::Created> PutJournal::created() const {
  std::lock_guard<std::mutex> lock(mu_);
  return created_;
}

std::vector<ObjectId> PutJournal::existing() const {
  std::lock_guard<std::mutex> lock(mu_);
  return existing_;
}

}  // namespace dreamdb
