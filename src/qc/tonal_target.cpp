// Target curves: reading and writing configs/targets/*.toml, and deriving a target from one
// analysis (a reference master) or the power-mean of many (a corpus, an album).
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string_view>
#include <system_error>

#include "lathe/error.hpp"
#include "lathe/tonal.hpp"

namespace lathe {
namespace fs = std::filesystem;

namespace {

using band_array = std::array<double, third_octave_band_count>;
constexpr double nan = std::numeric_limits<double>::quiet_NaN();
// Target mid levels are normalized to mean 0 over nominal 100 Hz .. 10 kHz, as tracks are.
constexpr std::size_t norm_first = 7, norm_last = 27;
constexpr std::string_view target_keys[] = {"name", "description", "derived_from", "mid_db", "width_db"};

[[noreturn]] void fail_at(const std::string& file, const toml::source_region& where, const std::string& why) {
  throw config_error(file + ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column) + ": " +
                     why);
}

// 31 numbers; `nan` means "no target for this band"; +-inf and anything else is an error.
band_array read_bands(const std::string& file, const toml::node& n, std::string_view key) {
  std::string k = "`";  // (built by appends: GCC 12 warns falsely on "`" + std::string(key))
  k += key;
  k += '`';
  const auto* arr = n.as_array();
  if (arr == nullptr) fail_at(file, n.source(), k + " must be an array of 31 numbers (dB, 20 Hz .. 20 kHz)");
  if (arr->size() != static_cast<std::size_t>(third_octave_band_count)) {
    fail_at(file, n.source(),
            k + " holds " + std::to_string(arr->size()) +
                " values; it needs 31 (one per 1/3-octave band, 20 Hz .. 20 kHz)");
  }
  band_array out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    const toml::node& v = *arr->get(i);
    if (const auto* x = v.as_integer()) {
      out[i] = static_cast<double>(x->get());
    } else if (const auto* f = v.as_floating_point()) {
      out[i] = f->get();
    } else {
      fail_at(file, v.source(), k + "[" + std::to_string(i) + "] must be a number");
    }
    if (std::isinf(out[i])) {
      fail_at(file, v.source(),
              k + "[" + std::to_string(i) + "] is infinite; use a finite dB value, or nan for no target");
    }
  }
  return out;
}

std::string read_string(const std::string& file, const toml::table& t, std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return {};
  const auto* s = n->as_string();
  if (s == nullptr) fail_at(file, n->source(), "`" + std::string(key) + "` must be a string");
  return s->get();
}

// A TOML basic string.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void write_bands(std::ofstream& out, const char* key, const band_array& v) {
  out << key << " = [\n";
  for (std::size_t i = 0; i < v.size(); ++i) {
    char buf[64];
    if (std::isfinite(v[i])) {
      std::snprintf(buf, sizeof buf, "  %7.2f,", v[i]);
    } else {
      std::snprintf(buf, sizeof buf, "  %7s,", "nan");
    }
    out << buf << "  # " << third_octave_names()[i] << " Hz\n";
  }
  out << "]\n";
}

// Subtracts the mean of the finite values over the normalization bands (finite values only).
void normalize(band_array& v) {
  double s = 0.0;
  int n = 0;
  for (std::size_t i = norm_first; i <= norm_last; ++i) {
    if (std::isfinite(v[i])) s += v[i], ++n;
  }
  if (n == 0) return;
  for (double& x : v) x -= s / n;
}

// A target has no -inf: a band a reference leaves silent (or a mono reference's width) says
// nothing usable, so it becomes "no target" (NaN).
band_array finite_or_nan(band_array v) {
  for (double& x : v) {
    if (!std::isfinite(x)) x = nan;
  }
  return v;
}

}  // namespace

target_curve load_target_curve(const fs::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    throw config_error(name + ": " + (fs::exists(file, ec) ? "is not a regular file" : "does not exist") +
                       "; a target curve is a .toml file (see configs/targets/)");
  }
  toml::table doc;
  try {
    doc = toml::parse_file(name);
  } catch (const toml::parse_error& e) {
    fail_at(name, e.source(), std::string(e.description()));
  }
  for (auto&& [k, v] : doc) {
    (void)v;
    if (std::find(std::begin(target_keys), std::end(target_keys), k.str()) == std::end(target_keys)) {
      fail_at(name, k.source(),
              "unknown key `" + std::string(k.str()) +
                  "`; a target curve takes name, description, derived_from, mid_db, width_db");
    }
  }
  target_curve t;
  t.name = file.stem().string();
  if (doc.get("name") != nullptr) t.name = read_string(name, doc, "name");
  t.description = read_string(name, doc, "description");
  t.derived_from = read_string(name, doc, "derived_from");
  const toml::node* mid = doc.get("mid_db");
  if (mid == nullptr) fail_at(name, doc.source(), "a target curve needs `mid_db` (31 numbers, dB, 20 Hz .. 20 kHz)");
  t.mid_db = read_bands(name, *mid, "mid_db");
  t.width_db.fill(nan);
  if (const toml::node* w = doc.get("width_db"); w != nullptr) t.width_db = read_bands(name, *w, "width_db");
  return t;
}

void save_target_curve(const target_curve& t, const fs::path& file) {
  std::ofstream out(file, std::ios::trunc);
  if (!out) throw output_error(file.string() + ": cannot write the target curve");
  out << "# lathe target curve: relative 1/3-octave mid levels (dB, mean 0 over 100 Hz .. 10 kHz)\n"
         "# and optional width (side - mid, dB) per band; nan = no target for that band.\n";
  out << "name = " << quoted(t.name) << "\n";
  out << "description = " << quoted(t.description) << "\n";
  out << "derived_from = " << quoted(t.derived_from) << "\n";
  write_bands(out, "mid_db", t.mid_db);
  if (t.has_width()) write_bands(out, "width_db", t.width_db);
  out.flush();
  if (!out) throw output_error(file.string() + ": writing the target curve failed");
}

target_curve target_from_analysis(const tonal_analysis& a, std::string name, std::string derived_from) {
  target_curve t;
  t.name = std::move(name);
  t.derived_from = std::move(derived_from);
  t.mid_db = finite_or_nan(normalized_mid_db(a));
  t.width_db = finite_or_nan(a.width_db);
  return t;
}

target_curve mean_target(std::span<const tonal_analysis> analyses, std::string name, std::string derived_from) {
  LATHE_EXPECTS(!analyses.empty(), "a mean target needs at least one analysis");
  band_array mid_power{}, width_power{};
  for (const tonal_analysis& a : analyses) {
    const band_array m = normalized_mid_db(a);
    // NaN (above Nyquist) stays NaN through the sums; -inf (a silent band) adds 0 power.
    for (std::size_t i = 0; i < m.size(); ++i) {
      mid_power[i] += std::pow(10.0, m[i] / 10.0);
      width_power[i] += std::pow(10.0, a.width_db[i] / 10.0);
    }
  }
  target_curve t;
  t.name = std::move(name);
  t.derived_from = std::move(derived_from);
  const double count = static_cast<double>(analyses.size());
  for (std::size_t i = 0; i < mid_power.size(); ++i) {
    t.mid_db[i] = 10.0 * std::log10(mid_power[i] / count);
    t.width_db[i] = 10.0 * std::log10(width_power[i] / count);
  }
  // The power mean of mean-0 curves is not mean 0.
  normalize(t.mid_db);
  t.mid_db = finite_or_nan(t.mid_db);
  t.width_db = finite_or_nan(t.width_db);
  return t;
}

}  // namespace lathe
