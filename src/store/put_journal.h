// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// PutJournal: which objects one unit of work (a dataset commit) created, so that the work
// can remove them again if it fails before publishing anything.
//
// While a journal is installed on a thread (PutJournal::Scope), every Store::Put and
// Store::PutWithId on that thread asks the backend whether the object exists first; if
// it did not and the put succeeds, the journal records the object and the modified time
// the put gave it. Code that hands puts to other threads installs the same journal there
// (Current() before, Scope inside the task). Journals nest: a record goes to the
// installed journal and to every journal it was installed under.
//
// The cost is one Head per put while a journal is installed, and nothing otherwise.
//
// Thread safety: a PutJournal may be written from several threads at once (records are
// guarded by mu_); Scope is per thread.
#ifndef DREAMDB_SRC_STORE_PUT_JOURNAL_H_
#define DREAMDB_SRC_STORE_PUT_JOURNAL_H_

#include <cstdint>
#include <mutex>
#include <vector>

#include "dreamdb/object_id.h"

namespace dreamdb {

class PutJournal {
 public:
  struct Created {
    ObjectId id;
    uint64_t size_bytes = 0;
    int64_t modified_unix_ms = 0;  // as the backend reported it right after the put
  };

  explicit PutJournal(PutJournal* parent = nullptr) : parent_(parent) {}
  PutJournal(const PutJournal&) = delete;
  PutJournal& operator=(const PutJournal&) = delete;

  // The journal installed on this thread, or nullptr.
  static PutJournal* Current();

  // Installs `journal` (may be nullptr: none) on this thread until destroyed.
  class Scope {
   public:
    explicit Scope(PutJournal* journal);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    PutJournal* previous_;
  };

  // Called by Store after a put that created `c.id` (it was absent just before).
  void RecordCreated(const Created& c);
  // Called by Store after a put of an object that already existed.
  void RecordExisting(const ObjectId& id);

  // The objects created under this journal, in put order; and every id put under it that
  // already existed.
  std::vector<Created> created() const;
  std::vector<ObjectId> existing() const;

 private:
  PutJournal* const parent_;
  mutable std::mutex mu_;
  std::vector<Created> created_;    // guarded by mu_
  std::vector<ObjectId> existing_;  // guarded by mu_
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_PUT_JOURNAL_H_
