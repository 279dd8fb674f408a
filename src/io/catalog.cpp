// Catalogs: a recursive folder scan or an RFC 4180 CSV manifest.
#include "lathe/catalog.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <system_error>

#include "lathe/error.hpp"

namespace lathe {
namespace fs = std::filesystem;

const std::vector<std::string>& audio_extensions() {
  static const std::vector<std::string> exts = {".wav",  ".wave", ".aif", ".aiff", ".aifc",
                                                ".flac", ".ogg",  ".oga", ".opus", ".mp3"};
  return exts;
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool is_hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

bool has_audio_extension(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  const auto& exts = audio_extensions();
  return std::find(exts.begin(), exts.end(), ext) != exts.end();
}

/// The catalog-relative path outputs mirror. A path that would climb out of the root ("..",
/// absolute elsewhere) keeps only its file name, so outputs never land outside the output folder.
fs::path safe_relative(const fs::path& given, const fs::path& root) {
  fs::path rel = given.is_absolute() ? given.lexically_relative(root) : given.lexically_normal();
  if (rel.empty() || rel.is_absolute() || *rel.begin() == "..") return given.filename();
  return rel;
}

std::vector<catalog_entry> scan_folder(const fs::path& root) {
  std::vector<catalog_entry> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw config_error(root.string() + ": cannot read the folder: " + ec.message());
  for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
    if (ec) throw config_error(root.string() + ": cannot read the folder: " + ec.message());
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || !has_audio_extension(p)) continue;
    catalog_entry e;
    e.relative_path = p.lexically_relative(root);
    e.path = p;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const catalog_entry& a, const catalog_entry& b) {
    return a.relative_path.generic_string() < b.relative_path.generic_string();
  });
  return out;
}

struct csv_record {
  std::vector<std::string> fields;
  std::size_t line = 0;  // where the record starts
  bool blank = false;    // one empty, unquoted field: a blank line
};

/// RFC 4180 reader: quoted fields with doubled quotes, commas and newlines inside quotes,
/// CRLF or LF line ends, an optional UTF-8 byte-order mark.
class csv_reader {
 public:
  csv_reader(std::string text, std::string file) : text_(std::move(text)), file_(std::move(file)) {
    if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;
  }

  std::optional<csv_record> next() {
    if (pos_ >= text_.size()) return std::nullopt;
    csv_record r;
    r.line = line_;
    std::string field;
    bool any_quoted = false;
    for (;;) {
      const bool end_of_text = pos_ >= text_.size();
      const char c = end_of_text ? '\n' : text_[pos_];
      if (end_of_text || c == '\n' || c == '\r') {
        if (!end_of_text) {
          ++pos_;
          if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
          ++line_;
        }
        r.fields.push_back(std::move(field));
        r.blank = r.fields.size() == 1 && r.fields[0].empty() && !any_quoted;
        return r;
      }
      if (c == ',') {
        r.fields.push_back(std::move(field));
        field.clear();
        ++pos_;
        continue;
      }
      if (c == '"') {
        if (!field.empty())
          error(line_, "a quote inside an unquoted field; enclose the field in quotes and double the quote (\"\")");
        any_quoted = true;
        read_quoted(field, r.line);
        continue;
      }
      field.push_back(c);
      ++pos_;
    }
  }

  [[noreturn]] void error(std::size_t line, const std::string& why) const {
    throw config_error(file_ + ":" + std::to_string(line) + ": " + why);
  }

 private:
  void read_quoted(std::string& field, std::size_t record_line) {
    const std::size_t open_line = line_;
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= text_.size()) {
        error(open_line,
              "unterminated quoted field: the quote opened on this line is never closed" +
                  std::string(record_line != open_line ? " (record starts on line " + std::to_string(record_line) + ")"
                                                       : ""));
      }
      const char c = text_[pos_++];
      if (c == '"') {
        if (pos_ < text_.size() && text_[pos_] == '"') {
          field.push_back('"');
          ++pos_;
          continue;
        }
        // The closing quote must end the field.
        if (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\n' && text_[pos_] != '\r') {
          error(line_, "text after a closing quote; a quote inside a quoted field is written as \"\"");
        }
        return;
      }
      if (c == '\n' || (c == '\r' && !(pos_ < text_.size() && text_[pos_] == '\n'))) ++line_;
      field.push_back(c);
    }
  }

  std::string text_;
  std::string file_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
};

enum class column {
  path,
  album,
  artist,
  title,
  track_number,
  isrc,
  eq_amount,
  width_amount,
  dynamics_amount,
  loudness_amount,
  reference
};
constexpr std::array<const char*, 11> column_names = {
    "path",      "album",        "artist",          "title",           "track_number", "isrc",
    "eq_amount", "width_amount", "dynamics_amount", "loudness_amount", "reference"};
constexpr const char* column_list =
    "path (required), album, artist, title, track_number, isrc, eq_amount, width_amount, dynamics_amount, "
    "loudness_amount, reference";

// An amount column: empty (the profile decides) or a percentage 0..100, with or without '%'.
std::optional<double> read_amount(const csv_reader& csv, std::size_t line, const char* name, std::string t) {
  t = trim(t);
  if (t.empty()) return std::nullopt;
  if (t.back() == '%') t.pop_back();
  double v = -1.0;
  std::size_t used = 0;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != t.size() || !(v >= 0.0 && v <= 100.0))
    csv.error(line, std::string(name) + " \"" + t + "\" is not a percentage from 0 to 100 (write e.g. 50)");
  return v / 100.0;
}

std::vector<catalog_entry> read_manifest(const fs::path& manifest) {
  std::ifstream in(manifest, std::ios::binary);
  if (!in) throw config_error(manifest.string() + ": cannot open the manifest");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw config_error(manifest.string() + ": cannot read the manifest");
  const std::string file = manifest.string();
  csv_reader csv(std::move(text), file);
  const fs::path root = manifest.has_parent_path() ? manifest.parent_path() : fs::path(".");

  std::optional<csv_record> header;
  while ((header = csv.next()) && header->blank) {
  }
  if (!header) throw config_error(file + ":1: the manifest is empty; it needs a header row with a `path` column");
  std::vector<column> cols;
  std::array<bool, column_names.size()> seen{};
  for (const std::string& raw : header->fields) {
    const std::string name = lower(trim(raw));
    const auto it = std::find_if(column_names.begin(), column_names.end(), [&](const char* n) { return name == n; });
    if (it == column_names.end()) {
      csv.error(header->line, "unknown column \"" + trim(raw) + "\"; the columns are " + column_list);
    }
    const auto idx = static_cast<std::size_t>(it - column_names.begin());
    if (seen[idx]) csv.error(header->line, "column \"" + name + "\" appears twice");
    seen[idx] = true;
    cols.push_back(static_cast<column>(idx));
  }
  if (!seen[0]) csv.error(header->line, "the header has no `path` column; it is required");

  std::vector<catalog_entry> out;
  while (auto rec = csv.next()) {
    if (rec->blank) continue;
    if (rec->fields.size() != cols.size()) {
      const std::size_t n = rec->fields.size();
      csv.error(rec->line, std::to_string(n) + (n == 1 ? " field" : " fields") + ", but the header has " +
                               std::to_string(cols.size()) + " columns (quote fields that contain commas)");
    }
    catalog_entry e;
    e.manifest_line = rec->line;
    for (std::size_t i = 0; i < cols.size(); ++i) {
      std::string& v = rec->fields[i];
      switch (cols[i]) {
        case column::path:
          if (trim(v).empty()) csv.error(rec->line, "empty path");
          e.path = fs::path(v);
          break;
        case column::album:
          e.album = std::move(v);
          break;
        case column::artist:
          e.artist = std::move(v);
          break;
        case column::title:
          e.title = std::move(v);
          break;
        case column::isrc:
          e.isrc = trim(v);
          break;
        case column::eq_amount:
          e.amounts.eq = read_amount(csv, rec->line, "eq_amount", v);
          break;
        case column::width_amount:
          e.amounts.width = read_amount(csv, rec->line, "width_amount", v);
          break;
        case column::dynamics_amount:
          e.amounts.dynamics = read_amount(csv, rec->line, "dynamics_amount", v);
          break;
        case column::loudness_amount:
          e.amounts.loudness = read_amount(csv, rec->line, "loudness_amount", v);
          break;
        case column::reference:
          if (!trim(v).empty()) {
            e.reference = fs::path(trim(v));
            if (e.reference.is_relative()) e.reference = root / e.reference;
          }
          break;
        case column::track_number: {
          const std::string t = trim(v);
          if (t.empty()) break;
          const bool digits =
              t.size() <= 6 && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
          if (!digits) csv.error(rec->line, "track_number \"" + t + "\" is not a whole number (write e.g. 3)");
          e.track_number = std::stoi(t);
          break;
        }
      }
    }
    e.relative_path = safe_relative(e.path, root);
    if (e.path.is_relative()) e.path = root / e.path;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

std::vector<catalog_entry> load_catalog(const fs::path& folder_or_manifest) {
  std::error_code ec;
  const auto st = fs::status(folder_or_manifest, ec);
  if (fs::is_directory(st)) return scan_folder(folder_or_manifest);
  if (fs::is_regular_file(st) && lower(folder_or_manifest.extension().string()) == ".csv") {
    return read_manifest(folder_or_manifest);
  }
  const std::string what = !fs::exists(st) ? "does not exist" : "is neither a folder nor a .csv manifest";
  throw config_error(folder_or_manifest.string() + ": " + what +
                     "; lathe takes a folder of audio files (searched recursively) or a CSV manifest (.csv) "
                     "with a `path` column");
}

}  // namespace lathe
