#pragma once
// What the profile reader and the stage modules (stage_module.cpp) share: the TOML table
// reader that checks every key against its schema, and the fingerprint text. Private to
// src/chain/.
#include <toml++/toml.h>
#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "lathe/error.hpp"

namespace lathe::detail {

inline std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// Reads one TOML table against its schema: the set of keys it may hold is declared up
/// front, and every value read is type- and range-checked with its source position.
class table_reader {
 public:
  table_reader(const toml::table& t, std::string file, std::string path, std::initializer_list<std::string_view> keys)
      : t_(t), file_(std::move(file)), path_(std::move(path)) {
    for (auto&& [k, v] : t_) {
      (void)v;
      if (std::find(keys.begin(), keys.end(), k.str()) == keys.end()) {
        std::string known;
        for (auto key : keys) known += (known.empty() ? "" : ", ") + std::string(key);
        fail(k.source(), (v.is_table() || v.is_array_of_tables() ? "unknown table `" : "unknown key `") +
                             qualified(k.str()) + "`; " + (path_.empty() ? "the top level" : "[" + path_ + "]") +
                             " takes " + known);
      }
    }
  }

  const toml::node* find(std::string_view key) const { return t_.get(key); }

  [[noreturn]] void fail(const toml::source_region& where, const std::string& why) const {
    throw config_error(file_ + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) +
                       ": " + why);
  }
  [[noreturn]] void fail_here(const std::string& why) const { fail(t_.source(), why); }

  std::string qualified(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  /// `key` with its table path, in backticks.
  std::string ticked(std::string_view key) const {
    std::string s = "`";
    s += qualified(key);
    s += '`';
    return s;
  }

  /// A number (integer or float) in [lo, hi]; `out` unchanged when absent.
  bool number(std::string_view key, double& out, double lo, double hi) const {
    const toml::node* n = find(key);
    if (!n) return false;
    double v = 0;
    if (const auto* i = n->as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = n->as_floating_point()) {
      v = f->get();
    } else {
      fail(n->source(), ticked(key) + " must be a number from " + fmt_num(lo) + " to " + fmt_num(hi));
    }
    if (!(v >= lo && v <= hi)) {
      fail(n->source(),
           ticked(key) + " = " + fmt_num(v) + " is out of range; accepted: " + fmt_num(lo) + " to " + fmt_num(hi));
    }
    out = v;
    return true;
  }

  /// An integer; range and extra rules are checked by the caller via check().
  bool integer(std::string_view key, long long& out) const {
    const toml::node* n = find(key);
    if (!n) return false;
    const auto* i = n->as_integer();
    if (!i) fail(n->source(), ticked(key) + " must be a whole number");
    out = i->get();
    return true;
  }

  bool string(std::string_view key, std::string& out) const {
    const toml::node* n = find(key);
    if (!n) return false;
    const auto* s = n->as_string();
    if (!s) fail(n->source(), ticked(key) + " must be a string");
    out = s->get();
    return true;
  }

  void check(std::string_view key, bool ok, const std::string& accepted) const {
    if (ok) return;
    fail(find(key)->source(), ticked(key) + " is out of range; accepted: " + accepted);
  }

  const toml::table* sub_table(std::string_view key) const {
    const toml::node* n = find(key);
    if (!n) return nullptr;
    const auto* t = n->as_table();
    if (!t) fail(n->source(), ticked(key) + " must be a table ([" + qualified(key) + "])");
    return t;
  }

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

 private:
  const toml::table& t_;
  std::string file_;
  std::string path_;
};

inline bool is_power_of_two(long long v) {
  return v > 0 && (v & (v - 1)) == 0;
}

// Stable "key=value;" text with doubles printed exactly (%.17g).
class fingerprint_text {
 public:
  explicit fingerprint_text(const char* tag) : s_(tag) {}
  void num(const char* key, double v) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    text(key, buf);
  }
  void text(const char* key, const std::string& v) {
    s_ += ';';
    s_ += key;
    s_ += '=';
    s_ += v;
  }
  std::string str() && { return std::move(s_); }

 private:
  std::string s_;
};

}  // namespace lathe::detail
