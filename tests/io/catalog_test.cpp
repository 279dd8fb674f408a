// Catalogs: folder scans and CSV manifests, including every manifest error with its line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lathe/catalog.hpp"
#include "lathe/error.hpp"

namespace fs = std::filesystem;
using namespace lathe;

namespace {

class catalog_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(LATHE_BINARY_DIR) / "test-tmp" /
           (std::string("catalog-") + info->name() + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  /// Creates `rel` (and its folders) with some bytes; the scan does not read them.
  fs::path touch(const std::string& rel) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "x";
    return p;
  }
  fs::path manifest(const std::string& text, const std::string& name = "manifest.csv") {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  /// Expects config_error "FILE:LINE: ..." containing `needle`.
  void expect_manifest_error(const std::string& text, std::size_t line, const std::string& needle) {
    const fs::path p = manifest(text);
    try {
      load_catalog(p);
      ADD_FAILURE() << "no error for:\n" << text;
    } catch (const config_error& e) {
      const std::string w = e.what();
      const std::string where = p.string() + ":" + std::to_string(line) + ": ";
      EXPECT_EQ(w.rfind(where, 0), 0u) << "want prefix '" << where << "' in: " << w;
      EXPECT_NE(w.find(needle), std::string::npos) << "want '" << needle << "' in: " << w;
    }
  }
  fs::path dir_;
};

std::vector<std::string> relative_paths(const std::vector<catalog_entry>& c) {
  std::vector<std::string> out;
  for (const auto& e : c) out.push_back(e.relative_path.generic_string());
  return out;
}

TEST_F(catalog_test, folder_scan_filters_sorts_and_skips_hidden) {
  for (const char* f : {"b/02 two.flac", "b/01 one.WAV", "a.mp3", "Z.Aiff", "c/d/e.opus", "x.ogg", "y.oga", "w.wave",
                        "v.aif", "u.aifc"}) {
    touch(f);
  }
  for (const char* f :
       {"notes.txt", "cover.jpg", "wav", "b/readme.md", ".hidden.wav", ".trash/x.wav", "b/.cache/y.flac", "noext"}) {
    touch(f);
  }
  fs::create_directories(dir_ / "folder.wav");  // a folder with an audio name is not a file
  const auto c = load_catalog(dir_);
  // Byte order of the generic relative path (upper case sorts before lower case).
  const std::vector<std::string> want = {"Z.Aiff", "a.mp3", "b/01 one.WAV", "b/02 two.flac", "c/d/e.opus",
                                         "u.aifc", "v.aif", "w.wave",       "x.ogg",         "y.oga"};
  EXPECT_EQ(relative_paths(c), want);
  for (const auto& e : c) {
    EXPECT_TRUE(fs::is_regular_file(e.path)) << e.path;
    EXPECT_EQ(e.path, dir_ / e.relative_path);
    EXPECT_EQ(e.manifest_line, 0u);
    EXPECT_EQ(e.track_number, 0);
    EXPECT_TRUE(e.title.empty());
  }
}

TEST_F(catalog_test, empty_folder_gives_empty_catalog) {
  EXPECT_TRUE(load_catalog(dir_).empty());
}

TEST_F(catalog_test, extension_list_is_lower_case_with_dot) {
  for (const auto& e : audio_extensions()) {
    EXPECT_EQ(e[0], '.');
    for (char c : e) EXPECT_FALSE(c >= 'A' && c <= 'Z') << e;
  }
  EXPECT_EQ(audio_extensions().size(), 10u);
}

TEST_F(catalog_test, manifest_quotes_bom_crlf_blank_lines) {
  touch("audio/one.wav");
  const std::string text =
      "\xEF\xBB\xBF"
      " Title ,PATH,Track_Number,  isrc,album,artist\r\n"                            // line 1
      "\"Hello, World\",audio/one.wav,1,GBAYE0601498,\"The \"\"Best\"\" Of\",A\r\n"  // line 2
      "\r\n"                                                                         // line 3: blank
      "\"Two\nlines\",\"audio/two,comma.flac\",,,,\r\n"                              // lines 4-5
      "plain,/abs/elsewhere/three.mp3, 12 ,,Album,\"\"\n"                            // line 6 (LF only)
      "\n";                                                                          // line 7: blank
  const auto c = load_catalog(manifest(text));
  ASSERT_EQ(c.size(), 3u);

  EXPECT_EQ(c[0].title, "Hello, World");
  EXPECT_EQ(c[0].album, "The \"Best\" Of");
  EXPECT_EQ(c[0].artist, "A");
  EXPECT_EQ(c[0].isrc, "GBAYE0601498");
  EXPECT_EQ(c[0].track_number, 1);
  EXPECT_EQ(c[0].manifest_line, 2u);
  EXPECT_EQ(c[0].path, dir_ / "audio/one.wav");
  EXPECT_EQ(c[0].relative_path, fs::path("audio/one.wav"));
  EXPECT_TRUE(fs::exists(c[0].path));

  EXPECT_EQ(c[1].title, "Two\nlines");
  EXPECT_EQ(c[1].path, dir_ / "audio/two,comma.flac");  // missing file: kept
  EXPECT_EQ(c[1].track_number, 0);
  EXPECT_EQ(c[1].manifest_line, 4u);

  EXPECT_EQ(c[2].path, fs::path("/abs/elsewhere/three.mp3"));
  EXPECT_EQ(c[2].relative_path, fs::path("three.mp3"));  // outside the root: name only
  EXPECT_EQ(c[2].track_number, 12);
  EXPECT_EQ(c[2].artist, "");
  EXPECT_EQ(c[2].manifest_line, 6u);
}

TEST_F(catalog_test, manifest_paths_resolve_against_its_folder_and_stay_inside) {
  fs::create_directories(dir_ / "lists");
  const fs::path p = manifest("path\n../up.wav\nsub/./x.wav\n", "lists/m.csv");
  const auto c = load_catalog(p);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].path, dir_ / "lists" / "../up.wav");
  EXPECT_EQ(c[0].relative_path, fs::path("up.wav"));  // ".." would escape the output folder
  EXPECT_EQ(c[1].relative_path, fs::path("sub/x.wav"));
}

TEST_F(catalog_test, manifest_with_only_path_column_and_no_final_newline) {
  const auto c = load_catalog(manifest("path\na.wav\nb.wav"));
  EXPECT_EQ(relative_paths(c), (std::vector<std::string>{"a.wav", "b.wav"}));
  EXPECT_EQ(c[1].manifest_line, 3u);
}

TEST_F(catalog_test, manifest_amounts_are_percentages_and_reference_is_a_path) {
  const auto c =
      load_catalog(manifest("path,eq_amount,width_amount,dynamics_amount,loudness_amount,reference\n"
                            "a.wav,50%,0,,100,ref/master.flac\n"
                            "b.wav,12.5,,,,\n"));
  ASSERT_EQ(c.size(), 2u);
  ASSERT_TRUE(c[0].amounts.eq && c[0].amounts.width && c[0].amounts.loudness);
  EXPECT_DOUBLE_EQ(*c[0].amounts.eq, 0.5);
  EXPECT_DOUBLE_EQ(*c[0].amounts.width, 0.0);
  EXPECT_FALSE(c[0].amounts.dynamics);  // empty: the profile decides
  EXPECT_DOUBLE_EQ(*c[0].amounts.loudness, 1.0);
  EXPECT_EQ(c[0].reference, dir_ / "ref/master.flac");
  EXPECT_DOUBLE_EQ(*c[1].amounts.eq, 0.125);
  EXPECT_TRUE(c[1].reference.empty());
  expect_manifest_error("path,eq_amount\na.wav,150\n", 2, "eq_amount \"150\" is not a percentage");
  expect_manifest_error("path,width_amount\na.wav,wide\n", 2, "width_amount \"wide\"");
}

TEST_F(catalog_test, manifest_errors_name_file_and_line) {
  expect_manifest_error("path,track_number\na.wav,1\nb.wav,three\n", 3, "track_number \"three\"");
  expect_manifest_error("path,track_number\na.wav,-1\n", 2, "not a whole number");
  expect_manifest_error("path,title\na.wav,x\n\nb.wav\n", 4, "1 field, but the header has 2 columns");
  expect_manifest_error("path,title\na.wav,x,extra\n", 2, "3 fields");
  expect_manifest_error("path,title\n\"\",x\n", 2, "empty path");
  expect_manifest_error("path,title\na.wav,x\nb.wav,\"never closed\nc.wav,y\n", 3, "unterminated quote");
  expect_manifest_error("title,artist\nx,y\n", 1, "no `path` column");
  expect_manifest_error("path,tempo\na.wav,120\n", 1, "unknown column \"tempo\"");
  expect_manifest_error("path,Path\na.wav,b.wav\n", 1, "appears twice");
  expect_manifest_error("path,title\na.wav,x\"y\n", 2, "quote inside an unquoted field");
  expect_manifest_error("path,title\na.wav,\"x\"y\n", 2, "after a closing quote");
  expect_manifest_error("\n\n", 1, "empty");
}

TEST_F(catalog_test, neither_folder_nor_csv_is_a_config_error) {
  const fs::path txt = touch("list.txt");
  for (const fs::path& p : {txt, dir_ / "missing"}) {
    try {
      load_catalog(p);
      ADD_FAILURE() << p;
    } catch (const config_error& e) {
      const std::string w = e.what();
      EXPECT_NE(w.find(p.string()), std::string::npos) << w;
      EXPECT_NE(w.find("folder"), std::string::npos) << w;
      EXPECT_NE(w.find("CSV manifest"), std::string::npos) << w;
    }
  }
  // Upper-case extension is still a manifest.
  EXPECT_EQ(load_catalog(manifest("path\na.wav\n", "M.CSV")).size(), 1u);
}

}  // namespace
