// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Implements spec/05-backend.md §9.6.2-§9.6.3.
#include "src/store/s3/http.h"

#include <curl/curl.h>
#include <expat.h>

#include <algorithm>
#include <array>
#include <random>

namespace dreamdb::s3 {
namespace {

std::once_flag g_curl_init;

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  auto* headers = static_cast<HeaderList*>(user);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();  // a new response (after 100 Continue or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  headers->emplace_back(std::move(name), std::string(value));
  return size * n;
}

struct XmlBuilder {
  std::vector<XmlNode*> stack;
  XmlNode root;
  bool started = false;
};

void XmlStart(void* user, const XML_Char* name, const XML_Char** /*attrs*/) {
  auto* b = static_cast<XmlBuilder*>(user);
  std::string_view n(name);
  size_t sep = n.rfind(' ');  // namespace separator
  if (sep != std::string_view::npos) n.remove_prefix(sep + 1);
  if (!b->started) {
    b->started = true;
    b->root.name = std::string(n);
    b->stack.push_back(&b->root);
    return;
  }
  XmlNode* parent = b->stack.back();
  parent->children.push_back(XmlNode{std::string(n), {}, {}});
  b->stack.push_back(&parent->children.back());
}

void XmlEnd(void* user, const XML_Char* /*name*/) {
  auto* b = static_cast<XmlBuilder*>(user);
  if (!b->stack.empty()) b->stack.pop_back();
}

void XmlText(void* user, const XML_Char* s, int len) {
  auto* b = static_cast<XmlBuilder*>(user);
  if (!b->stack.empty()) b->stack.back()->text.append(s, static_cast<size_t>(len));
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

HttpClient::HttpClient(HttpOptions options) : options_(options) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

HttpClient::~HttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void HttpClient::Release(void* handle) {
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.max_idle_handles) {
    idle_.push_back(handle);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

Result<HttpResponse> HttpClient::Perform(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(Acquire());
  if (curl == nullptr) return Unavailable("curl_easy_init failed");
  curl_easy_reset(curl);  // keeps the connection cache
  HttpResponse response;
  curl_slist* list = nullptr;
  for (const auto& [k, v] : request.headers) {
    list = curl_slist_append(list, (k + ": " + v).c_str());
  }
  // No "Expect: 100-continue" round trip and no default Content-Type.
  list = curl_slist_append(list, "Expect:");
  list = curl_slist_append(list, "Content-Type:");
  std::array<char, CURL_ERROR_SIZE> error{};
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error.data());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));  // NOLINT
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(options_.stall_timeout.count()));  // NOLINT
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(list);
  if (rc != CURLE_OK) {
    std::string why = error[0] != '\0' ? error.data() : curl_easy_strerror(rc);
    curl_easy_cleanup(curl);  // its connection is in an unknown state
    return Unavailable(request.method + " " + request.url.substr(0, request.url.find('?')) +
                       ": no answer: " + why);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  Release(curl);
  return response;
}

std::chrono::milliseconds RetryPolicy::Backoff(int attempt) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t ceiling = base.count() << std::min(attempt, 20);
  ceiling = std::min<int64_t>(ceiling, cap.count());
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<int64_t> dist(0, ceiling - 1);
  return std::chrono::milliseconds(dist(rng));
}

bool IsRetryableStatus(long status) {  // NOLINT(google-runtime-int)
  return status == 500 || status == 502 || status == 503 || status == 504 || status == 429;
}

const XmlNode* XmlNode::Child(std::string_view child) const {
  for (const XmlNode& c : children) {
    if (c.name == child) return &c;
  }
  return nullptr;
}

std::string XmlNode::ChildText(std::string_view child) const {
  const XmlNode* c = Child(child);
  return c != nullptr ? c->text : "";
}

Result<XmlNode> ParseXml(std::string_view xml) {
  XmlBuilder builder;
  XML_Parser parser = XML_ParserCreateNS(nullptr, ' ');
  if (parser == nullptr) return Internal("XML_ParserCreateNS failed");
  XML_SetUserData(parser, &builder);
  XML_SetElementHandler(parser, XmlStart, XmlEnd);
  XML_SetCharacterDataHandler(parser, XmlText);
  XML_Status st = XML_Parse(parser, xml.data(), static_cast<int>(xml.size()), XML_TRUE);
  std::string why = st == XML_STATUS_OK ? "" : XML_ErrorString(XML_GetErrorCode(parser));
  XML_ParserFree(parser);
  if (st != XML_STATUS_OK || !builder.started) {
    return IoError("malformed XML from the S3 server: " + (why.empty() ? "empty document" : why));
  }
  return std::move(builder.root);
}

}  // namespace dreamdb::s3
