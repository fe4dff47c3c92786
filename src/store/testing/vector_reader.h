// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// A reader for the golden vector files' JSON subset (spec/vectors/): an array of flat
// objects whose values are strings or booleans. Enough for golden vectors; fails loudly
// on anything else. Thread safety: one reader per thread.

#ifndef DREAMDB_SRC_STORE_TESTING_VECTOR_READER_H_
#define DREAMDB_SRC_STORE_TESTING_VECTOR_READER_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dreamdb {

class VectorReader {
 public:
  explicit VectorReader(std::string text) : s_(std::move(text)) {}

  using Record = std::map<std::string, std::string>;  // booleans as "true" / "false"

  bool ReadArray(std::vector<Record>* out) {
    if (!Eat('[')) return false;
    if (Peek() == ']') return Eat(']');
    while (true) {
      Record rec;
      if (!ReadObject(&rec)) return false;
      out->push_back(std::move(rec));
      if (Peek() == ',') {
        Eat(',');
        continue;
      }
      return Eat(']');
    }
  }
  std::string error() const { return "JSON error near byte " + std::to_string(i_); }

 private:
  void Skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }
  char Peek() {
    Skip();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++i_;
    return true;
  }
  bool ReadObject(Record* rec) {
    if (!Eat('{')) return false;
    if (Peek() == '}') return Eat('}');
    while (true) {
      std::string key, value;
      if (!ReadString(&key) || !Eat(':')) return false;
      char c = Peek();
      if (c == '"') {
        if (!ReadString(&value)) return false;
      } else if (s_.compare(i_, 4, "true") == 0) {
        value = "true", i_ += 4;
      } else if (s_.compare(i_, 5, "false") == 0) {
        value = "false", i_ += 5;
      } else {
        return false;
      }
      (*rec)[key] = value;
      if (Peek() == ',') {
        Eat(',');
        continue;
      }
      return Eat('}');
    }
  }
  bool ReadString(std::string* out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
          i_ += 4;
          if (cp >= 0xd800 && cp < 0xe000) return false;  // no surrogates in our vectors
          if (cp < 0x80) {
            out->push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          break;
        }
        default:
          return false;
      }
    }
    return Eat('"');
  }

  std::string s_;
  size_t i_ = 0;
};

}  // namespace dreamdb

#endif  // DREAMDB_SRC_STORE_TESTING_VECTOR_READER_H_
