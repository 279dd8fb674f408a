#include "plan.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include "content_hash.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"

namespace lathe {

std::string sanitize_name(const std::string& name) {
  std::string out;
  out.reserve(name.size());
  for (const char ch : name) {
    const auto u = static_cast<unsigned char>(ch);
    const bool bad = u < 0x20 || u == 0x7f || ch == '/' || ch == '\\' || ch == ':' || ch == '*' || ch == '?' ||
                     ch == '"' || ch == '<' || ch == '>' || ch == '|';
    out += bad ? '_' : ch;
  }
  // Trailing dots and spaces are dropped by Windows shares; leading ones hide files.
  while (!out.empty() && (out.back() == ' ' || out.back() == '.')) out.pop_back();
  std::size_t lead = 0;
  while (lead < out.size() && (out[lead] == ' ' || out[lead] == '.')) ++lead;
  out.erase(0, lead);
  constexpr std::size_t max_bytes = 180;
  if (out.size() > max_bytes) {
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    out.resize(cut);
  }
  return out.empty() ? "_" : out;
}

std::filesystem::path state_path(const std::filesystem::path& out_dir, const std::filesystem::path& output_rel) {
  return out_dir / ".lathe" / "state" / (output_rel.string() + ".json");
}

namespace {

std::string first_non_empty(std::initializer_list<const std::string*> options) {
  for (const std::string* s : options)
    if (!s->empty()) return *s;
  return {};
}

// What identifies an input for resume: its content, and what the manifest says about adapting
// it (amounts and a reference master).
std::string input_identity(const planned_track& t, const std::filesystem::path& cache_dir) {
  if (!t.info) return "unreadable";  // the track fails with its reason; nothing of it is resumed
  std::string id;
  try {
    id = cached_content_hash(t.entry.path, cache_dir);
  } catch (const input_error&) {
    id = "unreadable";
  }
  const track_amounts& a = t.entry.amounts;
  for (const auto& amount : {a.eq, a.width, a.dynamics, a.loudness})
    id += amount ? fmt::format("|{:.17g}", *amount) : std::string("|-");
  if (!t.entry.reference.empty()) {
    try {
      id += "|ref:" + cached_content_hash(t.entry.reference, cache_dir);
    } catch (const input_error&) {
      id += "|ref:unreadable";
    }
  }
  return id;
}

}  // namespace

run_plan make_plan(std::vector<catalog_entry> entries, std::vector<delivery_profile> profiles, album_mode mode) {
  run_plan plan;
  plan.mode = mode;
  plan.profiles = std::move(profiles);
  plan.tracks.resize(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    planned_track& t = plan.tracks[i];
    t.index = i;
    t.entry = std::move(entries[i]);
    try {
      t.info = probe_file(t.entry.path);
    } catch (const input_error& e) {
      t.probe_error = e.reason();
    }
    const track_tags file_tags = t.info ? t.info->tags : track_tags{};
    const std::string stem = t.entry.path.stem().string();
    t.tags.title = first_non_empty({&t.entry.title, &file_tags.title, &stem});
    t.tags.artist = first_non_empty({&t.entry.artist, &file_tags.artist});
    t.tags.album = first_non_empty({&t.entry.album, &file_tags.album});
    t.tags.isrc = first_non_empty({&t.entry.isrc, &file_tags.isrc});
    t.tags.track_number = t.entry.track_number != 0 ? t.entry.track_number : file_tags.track_number;
  }

  // Albums: tracks that share an album name are mastered together (AES TD1008 album
  // normalization) unless --track-mode; a lone track is its own album either way.
  std::map<std::string, std::vector<std::size_t>> by_album;
  for (const planned_track& t : plan.tracks)
    if (!t.tags.album.empty()) by_album[t.tags.album].push_back(t.index);
  if (mode == album_mode::album) {
    for (auto& [name, members] : by_album) {
      if (members.size() < 2) continue;
      for (std::size_t i : members) plan.tracks[i].album_key = name;
      plan.albums.emplace(name, members);
    }
  }

  // Output paths, collision-free in catalog order.
  std::set<std::string> taken;
  for (planned_track& t : plan.tracks) {
    std::filesystem::path folder;
    if (!t.tags.album.empty()) {
      folder = sanitize_name(t.tags.album);
    } else {
      for (const auto& part : t.entry.relative_path.parent_path()) folder /= sanitize_name(part.string());
    }
    std::string base = sanitize_name(
        t.tags.track_number > 0 ? fmt::format("{:02} - {}", t.tags.track_number, t.tags.title) : t.tags.title);
    for (const delivery_profile& p : plan.profiles) {
      const std::string ext = file_extension(p.container);
      std::filesystem::path rel = std::filesystem::path(sanitize_name(p.name)) / folder / (base + "." + ext);
      for (int k = 2; taken.count(rel.string()) != 0; ++k)
        rel = std::filesystem::path(sanitize_name(p.name)) / folder / fmt::format("{} ({}).{}", base, k, ext);
      taken.insert(rel.string());
      t.outputs.push_back(rel);
    }
    t.dither_seed_base = fnv1a64(t.entry.relative_path.generic_string());
  }

  return plan;
}

run_plan fingerprint_plan(run_plan plan, const std::filesystem::path& hash_cache_dir) {
  // Fingerprints: an output is complete for a rerun only if the input, the profile, lathe's
  // version, the metadata and (album mode) every track of its album are unchanged.
  std::vector<std::string> identity(plan.tracks.size());
  tbb::parallel_for(std::size_t{0}, plan.tracks.size(),
                    [&](std::size_t i) { identity[i] = input_identity(plan.tracks[i], hash_cache_dir); });
  for (planned_track& t : plan.tracks) {
    t.fingerprints.clear();
    std::string context = "track";
    if (!t.album_key.empty()) {
      context = "album";
      for (std::size_t j : plan.albums.at(t.album_key)) context += "|" + identity[j];
    }
    t.record_key = fmt::format("lathe {}\n{}\n{}\n{}|{}|{}|{}|{}", LATHE_VERSION, identity[t.index], context,
                               t.tags.title, t.tags.artist, t.tags.album, t.tags.track_number, t.tags.isrc);
    for (std::size_t f = 0; f < plan.profiles.size(); ++f) {
      const std::string key =
          fmt::format("lathe {}\n{}\n{}\n{}\n{}|{}|{}|{}|{}\n{}", LATHE_VERSION, profile_fingerprint(plan.profiles[f]),
                      identity[t.index], context, t.tags.title, t.tags.artist, t.tags.album, t.tags.track_number,
                      t.tags.isrc, t.outputs[f].generic_string());
      t.fingerprints.push_back(fmt::format("{:016x}", fnv1a64(key)));
    }
  }
  return plan;
}

}  // namespace lathe
