#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "content_hash.hpp"
#include "lathe/error.hpp"
#include "pipeline.hpp"
#include "plan.hpp"

namespace lathe {
namespace {

TEST(SanitizeName, NothingEscapesTheOutputFolder) {
  EXPECT_EQ(sanitize_name("../../etc/passwd"), "_.._etc_passwd");
  EXPECT_EQ(sanitize_name(".."), "_");
  EXPECT_EQ(sanitize_name("."), "_");
  EXPECT_EQ(sanitize_name(""), "_");
  EXPECT_EQ(sanitize_name("a/b\\c:d*e?f\"g<h>i|j"), "a_b_c_d_e_f_g_h_i_j");
  EXPECT_EQ(sanitize_name(std::string("tab\there\nnl")), "tab_here_nl");
  EXPECT_EQ(sanitize_name("  .hidden trailing.  "), "hidden trailing");
  EXPECT_EQ(sanitize_name("Ünïcödé — ok"), "Ünïcödé — ok");
}

TEST(SanitizeName, LongNamesAreCutOnCharacterBoundaries) {
  std::string s;
  for (int i = 0; i < 100; ++i) s += "é";  // 2 bytes each
  const std::string out = sanitize_name(s);
  EXPECT_LE(out.size(), 180u);
  EXPECT_EQ(out.size() % 2, 0u);
}

catalog_entry entry(const std::string& rel, const std::string& album, const std::string& title, int n) {
  catalog_entry e;
  e.path = "/nonexistent/" + rel;
  e.relative_path = rel;
  e.album = album;
  e.title = title;
  e.track_number = n;
  return e;
}

delivery_profile profile(const std::string& name, container_format c) {
  delivery_profile p;
  p.name = name;
  p.container = c;
  return p;
}

TEST(MakePlan, OutputPathsFollowFormatAlbumNumberTitleAndNeverCollide) {
  std::vector<catalog_entry> es = {entry("a/1.wav", "Album/One", "Intro", 1), entry("a/2.wav", "Album/One", "Intro", 1),
                                   entry("b/x.wav", "", "Loose", 0), entry("c/y.wav", "Solo", "Alone", 3)};
  const run_plan plan = make_plan(
      es, {profile("cd", container_format::wav), profile("streaming", container_format::flac)}, album_mode::album);
  ASSERT_EQ(plan.tracks.size(), 4u);
  EXPECT_EQ(plan.tracks[0].outputs[0], "cd/Album_One/01 - Intro.wav");
  EXPECT_EQ(plan.tracks[1].outputs[0], "cd/Album_One/01 - Intro (2).wav");
  EXPECT_EQ(plan.tracks[0].outputs[1], "streaming/Album_One/01 - Intro.flac");
  EXPECT_EQ(plan.tracks[2].outputs[0], "cd/b/Loose.wav");  // no album: keeps the catalog folder
  EXPECT_EQ(plan.tracks[3].outputs[0], "cd/Solo/03 - Alone.wav");
  // Albums need two tracks; a lone album track is mastered alone.
  ASSERT_EQ(plan.albums.size(), 1u);
  EXPECT_EQ(plan.tracks[0].album_key, "Album/One");
  EXPECT_EQ(plan.tracks[3].album_key, "");
  // Missing files fail at planning with a reason, not the whole run.
  EXPECT_FALSE(plan.tracks[0].info.has_value());
  EXPECT_FALSE(plan.tracks[0].probe_error.empty());
}

TEST(MakePlan, TrackModeMakesNoAlbumsAndFingerprintsDifferByMode) {
  const std::filesystem::path cache = std::filesystem::temp_directory_path() / "lathe-plan-test-hashes";
  std::vector<catalog_entry> es = {entry("a/1.wav", "A", "One", 1), entry("a/2.wav", "A", "Two", 2)};
  auto plan = [&](album_mode mode) {
    return fingerprint_plan(make_plan(es, {profile("cd", container_format::wav)}, mode), cache);
  };
  const run_plan album = plan(album_mode::album);
  const run_plan track = plan(album_mode::track);
  EXPECT_EQ(album.albums.size(), 1u);
  EXPECT_TRUE(track.albums.empty());
  EXPECT_NE(album.tracks[0].fingerprints[0], track.tracks[0].fingerprints[0]);
  EXPECT_EQ(album.tracks[0].fingerprints[0], plan(album_mode::album).tracks[0].fingerprints[0]);
  std::filesystem::remove_all(cache);
}

void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// Published XXH3-128 values (xxhsum -H2): the empty input, and "lathe".
TEST(ContentHash, MatchesXxhsumAndKnowsFilesByBytesAlone) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lathe-content-hash-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "elsewhere");
  write_file(dir / "empty", "");
  write_file(dir / "a", "lathe");
  write_file(dir / "elsewhere" / "copy", "lathe");
  write_file(dir / "b", "lathf");
  EXPECT_EQ(content_hash(dir / "empty"), "xxh3-128:99aa06d3014798d86001c324468d497f:0");
  EXPECT_EQ(content_hash(dir / "a"), "xxh3-128:7a13ec99e8ae3441b2e647a0bd0e048a:5");
  EXPECT_EQ(content_hash(dir / "elsewhere" / "copy"), content_hash(dir / "a"));
  EXPECT_NE(content_hash(dir / "b"), content_hash(dir / "a"));
  try {
    (void)content_hash(dir / "missing");
    ADD_FAILURE() << "no error for a missing file";
  } catch (const input_error& e) {
    EXPECT_EQ(e.path(), (dir / "missing").string());
  }
  std::filesystem::remove_all(dir);
}

TEST(ContentHash, CacheIsTrustedWhileSizeAndTimeHoldAndRedoneWhenTheyChange) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lathe-content-hash-cache-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "track.flac";
  const std::filesystem::path cache = dir / "cache";
  write_file(file, "lathe");
  const std::string real = content_hash(file);
  EXPECT_EQ(cached_content_hash(file, cache), real);
  // Plant a different hash in the one entry: while the file's size and time are unchanged
  // the entry is used, so the file is not read.
  std::filesystem::path entry;
  for (const auto& e : std::filesystem::directory_iterator(cache)) entry = e.path();
  ASSERT_FALSE(entry.empty());
  std::string text;
  {
    std::ifstream in(entry);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto at = text.find(real);
  ASSERT_NE(at, std::string::npos);
  write_file(entry, text.replace(at, real.size(), "planted"));
  EXPECT_EQ(cached_content_hash(file, cache), "planted");
  // A new modification time makes the entry stale: the file is hashed again.
  std::filesystem::last_write_time(file, std::filesystem::last_write_time(file) + std::chrono::seconds(3));
  EXPECT_EQ(cached_content_hash(file, cache), real);
  // A damaged entry is as if absent.
  write_file(entry, "{not json");
  EXPECT_EQ(cached_content_hash(file, cache), real);
  std::filesystem::remove_all(dir);
}

TEST(ParseSize, AcceptsUnitsAndRejectsNonsense) {
  EXPECT_EQ(parse_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_size("4G"), 4ull << 30);
  EXPECT_EQ(parse_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_size("1000"), 1000u);
  EXPECT_THROW(parse_size("lots"), config_error);
  EXPECT_THROW(parse_size("5X"), config_error);
  EXPECT_THROW(parse_size("-1G"), config_error);
}

}  // namespace
}  // namespace lathe
