#include <gtest/gtest.h>

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
  std::vector<catalog_entry> es = {entry("a/1.wav", "A", "One", 1), entry("a/2.wav", "A", "Two", 2)};
  const run_plan album = make_plan(es, {profile("cd", container_format::wav)}, album_mode::album);
  const run_plan track = make_plan(es, {profile("cd", container_format::wav)}, album_mode::track);
  EXPECT_EQ(album.albums.size(), 1u);
  EXPECT_TRUE(track.albums.empty());
  EXPECT_NE(album.tracks[0].fingerprints[0], track.tracks[0].fingerprints[0]);
  EXPECT_EQ(album.tracks[0].fingerprints[0],
            make_plan(es, {profile("cd", container_format::wav)}, album_mode::album).tracks[0].fingerprints[0]);
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
