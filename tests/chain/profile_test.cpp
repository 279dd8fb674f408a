// Delivery profiles: the shipped configs hold the published figures, and every kind of bad
// profile is a config_error with its file:line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lathe/error.hpp"
#include "lathe/profile.hpp"

namespace fs = std::filesystem;
using namespace lathe;

namespace {

const fs::path configs = fs::path(LATHE_SOURCE_DIR) / "configs";

class profile_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(LATHE_BINARY_DIR) / "test-tmp" /
           (std::string("profile-") + info->name() + "-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  /// Expects config_error starting "FILE:LINE:" and containing `needle`.
  void expect_error(const std::string& text, int line, const std::string& needle) {
    const fs::path p = write("bad.toml", text);
    try {
      load_profile(p);
      ADD_FAILURE() << "no error for:\n" << text;
    } catch (const config_error& e) {
      const std::string w = e.what();
      const std::string where = p.string() + ":" + std::to_string(line) + ":";
      EXPECT_EQ(w.rfind(where, 0), 0u) << "want prefix '" << where << "' in: " << w;
      EXPECT_NE(w.find(needle), std::string::npos) << "want '" << needle << "' in: " << w;
    }
  }
  fs::path dir_;
};

const std::string minimal = "[loudness]\ntarget_lufs = -14\nceiling_dbtp = -1\n";

// Expected chain defaults in every shipped profile (the brief: 20 Hz order 4, no EQ bands,
// limiter 2 ms / 80 ms).
void expect_shipped_chain(const delivery_profile& p) {
  EXPECT_EQ(p.highpass.cutoff_hz, 20.0);
  EXPECT_EQ(p.highpass.order, 4);
  EXPECT_TRUE(p.eq.bands.empty());
  EXPECT_EQ(p.limiter.lookahead_ms, 2.0);
  EXPECT_EQ(p.limiter.release_ms, 80.0);
  EXPECT_EQ(p.limiter.ceiling_dbtp, p.ceiling_dbtp);
  EXPECT_EQ(p.normalization, normalization_mode::limit);
  EXPECT_FALSE(p.description.empty());
  EXPECT_FALSE(p.source.empty());
}

struct shipped {
  const char* name;
  double target_lufs, tolerance_lu, ceiling_dbtp;
  double sample_rate_hz;  // 0: the source rate
  double min_sample_rate_hz;
  int bit_depth;
  container_format container;
  noise_shaping shaping;
  const char* source_must_mention;
};

// Reference values: /work/shared/DELIVERY-TARGETS.md (Spotify's page, EBU R 128 v4.0 with its
// QC tolerance, ATSC A/85 with its +-2 dB, AES TD1008 track-normalized music, the third-party
// Apple tables) and the brief's CD choices (Red Book has no loudness figure).
class shipped_profiles : public ::testing::TestWithParam<shipped> {};

TEST_P(shipped_profiles, hold_the_published_figures) {
  const shipped& e = GetParam();
  const auto p = load_profile(configs / (std::string(e.name) + ".toml"));
  EXPECT_EQ(p.name, e.name);
  EXPECT_EQ(p.target_lufs, e.target_lufs);
  EXPECT_EQ(p.tolerance_lu, e.tolerance_lu);
  EXPECT_EQ(p.ceiling_dbtp, e.ceiling_dbtp);
  if (e.sample_rate_hz > 0) {
    EXPECT_EQ(p.sample_rate_hz, e.sample_rate_hz);
  } else {
    EXPECT_FALSE(p.sample_rate_hz.has_value());
    EXPECT_EQ(p.output_rate_hz(22'050.0), std::max(22'050.0, e.min_sample_rate_hz));
    EXPECT_EQ(p.output_rate_hz(96'000.0), 96'000.0);
  }
  EXPECT_EQ(p.min_sample_rate_hz, e.min_sample_rate_hz);
  EXPECT_EQ(p.bit_depth, e.bit_depth);
  EXPECT_EQ(p.container, e.container);
  EXPECT_EQ(p.shaping, e.shaping);
  EXPECT_NE(p.source.find(e.source_must_mention), std::string::npos) << p.source;
  expect_shipped_chain(p);
}

INSTANTIATE_TEST_SUITE_P(
    configs, shipped_profiles,
    ::testing::Values(
        shipped{"streaming", -14.0, 0.1, -1.0, 0, 0, 24, container_format::flac, noise_shaping::none,
                "support.spotify.com/us/artists/article/loudness-normalization"},
        shipped{"apple", -16.0, 0.1, -1.0, 0, 44'100, 24, container_format::wav, noise_shaping::none, "third-party"},
        shipped{"cd", -12.0, 0.1, -0.3, 44'100, 0, 16, container_format::wav, noise_shaping::f_weighted, "Red Book"},
        shipped{"hires", -16.0, 0.2, -1.0, 96'000, 0, 24, container_format::flac, noise_shaping::none, "TD1008"},
        shipped{"broadcast", -23.0, 0.2, -1.0, 48'000, 0, 24, container_format::wav, noise_shaping::none, "R 128"},
        shipped{"atsc", -24.0, 2.0, -2.0, 48'000, 0, 24, container_format::wav, noise_shaping::none, "A/85"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(shipped_profile_dir, loads_sorted_with_distinct_fingerprints) {
  const auto all = load_profiles_dir(configs);
  std::vector<std::string> names;
  for (const auto& p : all) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"apple", "atsc", "broadcast", "cd", "hires", "streaming", "vinyl"}));
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::size_t j = i + 1; j < all.size(); ++j)
      EXPECT_NE(profile_fingerprint(all[i]), profile_fingerprint(all[j])) << names[i] << " vs " << names[j];
}

TEST_F(profile_test, minimal_profile_takes_defaults_and_file_stem) {
  const auto p = load_profile(write("my-format.toml", minimal));
  EXPECT_EQ(p.name, "my-format");
  EXPECT_EQ(p.tolerance_lu, 0.1);
  EXPECT_EQ(p.normalization, normalization_mode::limit);
  EXPECT_FALSE(p.sample_rate_hz.has_value());
  EXPECT_EQ(p.min_sample_rate_hz, 0.0);
  EXPECT_EQ(p.bit_depth, 24);
  EXPECT_EQ(p.container, container_format::flac);
  EXPECT_EQ(p.shaping, noise_shaping::none);
  const highpass_params hp;
  EXPECT_EQ(p.highpass.cutoff_hz, hp.cutoff_hz);
  const limiter_params lp;
  EXPECT_EQ(p.limiter.release_ms, lp.release_ms);
  EXPECT_EQ(p.limiter.ceiling_dbtp, -1.0);
}

TEST_F(profile_test, full_schema_parses) {
  const auto p = load_profile(write("full.toml", R"(
name = "custom"
description = "d"
source = "s"
[loudness]
target_lufs = -18.5
tolerance_lu = 5
ceiling_dbtp = -0.5
normalization = "linear"
[output]
sample_rate_hz = 88200
bit_depth = 32
container = "wav"
[chain.highpass]
cutoff_hz = 0
order = 8
[chain.eq]
fir_taps = 4097
partition_frames = 256
[[chain.eq.band]]
type = "low_shelf"
freq_hz = 80
gain_db = -2.5
q = 0.5
[[chain.eq.band]]
type = "high_pass"
freq_hz = 40000
[chain.limiter]
lookahead_ms = 0.5
release_ms = 2000
margin_db = 1
max_reduction_db = 12
)"));
  EXPECT_EQ(p.name, "custom");
  EXPECT_EQ(p.target_lufs, -18.5);
  EXPECT_EQ(p.tolerance_lu, 5.0);
  EXPECT_EQ(p.normalization, normalization_mode::linear);
  EXPECT_EQ(p.sample_rate_hz, 88'200.0);
  EXPECT_EQ(p.output_rate_hz(44'100.0), 88'200.0);
  EXPECT_EQ(p.bit_depth, 32);
  EXPECT_EQ(p.highpass.cutoff_hz, 0.0);
  EXPECT_EQ(p.highpass.order, 8);
  EXPECT_EQ(p.eq.fir_taps, 4'097u);
  EXPECT_EQ(p.eq.partition_frames, 256u);
  ASSERT_EQ(p.eq.bands.size(), 2u);
  EXPECT_EQ(p.eq.bands[0].type, eq_band_type::low_shelf);
  EXPECT_EQ(p.eq.bands[0].gain_db, -2.5);
  EXPECT_EQ(p.eq.bands[0].q, 0.5);
  EXPECT_EQ(p.eq.bands[1].type, eq_band_type::high_pass);
  EXPECT_EQ(p.eq.bands[1].freq_hz, 40'000.0);
  EXPECT_EQ(p.eq.bands[1].q, eq_band{}.q);
  EXPECT_EQ(p.limiter.lookahead_ms, 0.5);
  EXPECT_EQ(p.limiter.release_ms, 2'000.0);
  EXPECT_EQ(p.limiter.margin_db, 1.0);
  EXPECT_EQ(p.limiter.max_reduction_db, 12.0);
  EXPECT_EQ(p.limiter.ceiling_dbtp, -0.5);
}

TEST_F(profile_test, fingerprint_tracks_audio_settings_only) {
  const auto base = load_profile(write("a.toml", minimal));
  EXPECT_EQ(profile_fingerprint(base), profile_fingerprint(load_profile(write("a.toml", minimal))));
  // Name, description and source do not change the audio.
  const auto renamed = load_profile(write("b.toml", "name = \"x\"\ndescription = \"y\"\n" + minimal));
  EXPECT_EQ(profile_fingerprint(base), profile_fingerprint(renamed));
  // Each of these does.
  for (const std::string& extra :
       {std::string("[output]\nbit_depth = 16\n"), std::string("[output]\ncontainer = \"wav\"\n"),
        std::string("[output]\nsample_rate_hz = 48000\n"), std::string("[chain.highpass]\norder = 2\n"),
        std::string("[chain.limiter]\nrelease_ms = 81\n"), std::string("[chain.limiter]\nmax_reduction_db = 9\n"),
        std::string("[[chain.eq.band]]\ntype = \"bell\"\nfreq_hz = 1000\ngain_db = 1\n")}) {
    const auto changed = load_profile(write("c.toml", minimal + extra));
    EXPECT_NE(profile_fingerprint(base), profile_fingerprint(changed)) << extra;
  }
  auto tiny = base;
  tiny.target_lufs = std::nextafter(tiny.target_lufs, 0.0);  // %.17g round-trips every double
  EXPECT_NE(profile_fingerprint(base), profile_fingerprint(tiny));
}

TEST_F(profile_test, unknown_keys_and_tables) {
  expect_error("nmae = \"x\"\n" + minimal, 1, "unknown key `nmae`");
  expect_error("[loudness]\ntarget_lufs = -14\nceiling_dbtp = -1\ntarget_lfus = 3\n", 4,
               "unknown key `loudness.target_lfus`");
  expect_error(minimal + "[chain.limiter]\nrelease = 80\n", 5, "unknown key `chain.limiter.release`");
  expect_error(minimal + "[[chain.eq.band]]\ntype = \"bell\"\nfrequency = 100\n", 6,
               "unknown key `chain.eq.band.frequency`");
  expect_error(minimal + "[chain.compressor]\nratio = 2\n", 4, "unknown table `chain.compressor`");
  expect_error(minimal + "[outptu]\nbit_depth = 16\n", 4, "unknown table `outptu`");
}

TEST_F(profile_test, wrong_types) {
  expect_error("[loudness]\ntarget_lufs = \"-14\"\nceiling_dbtp = -1\n", 2, "`loudness.target_lufs` must be a number");
  expect_error(minimal + "[output]\nbit_depth = 24.0\n", 5, "`output.bit_depth` must be a whole number");
  expect_error(minimal + "[output]\ncontainer = 1\n", 5, "`output.container` must be a string");
  expect_error("chain = 3\n" + minimal, 1, "`chain` must be a table");
  expect_error(minimal + "[chain.eq]\nband = 3\n", 5, "array of tables");
  expect_error("name = 5\n" + minimal, 1, "`name` must be a string");
}

TEST_F(profile_test, out_of_range_values_say_the_accepted_range) {
  expect_error("[loudness]\ntarget_lufs = 1\nceiling_dbtp = -1\n", 2, "accepted: -40 to 0");
  expect_error("[loudness]\ntarget_lufs = -14\nceiling_dbtp = -21\n", 3, "accepted: -20 to 0");
  expect_error("[loudness]\ntarget_lufs = -14\nceiling_dbtp = nan\n", 3, "accepted: -20 to 0");
  expect_error("[loudness]\ntarget_lufs = -14\ntolerance_lu = 0\nceiling_dbtp = -1\n", 3, "tolerance_lu");
  expect_error(minimal + "[output]\nsample_rate_hz = 4000\n", 5, "accepted: 8000 to 384000");
  expect_error(minimal + "[output]\nsample_rate_hz = 44100.5\n", 5, "whole number of Hz");
  expect_error(minimal + "[output]\nbit_depth = 20\n", 5, "16, 24 or 32");
  expect_error(minimal + "[chain.highpass]\ncutoff_hz = 2\n", 5, "0 (off) or 5 to 200");
  expect_error(minimal + "[chain.highpass]\norder = 9\n", 5, "1 to 8");
  expect_error(minimal + "[chain.eq]\nfir_taps = 4096\n", 5, "odd number from 129 to 131071");
  expect_error(minimal + "[chain.eq]\nfir_taps = 127\n", 5, "odd number from 129 to 131071");
  expect_error(minimal + "[chain.eq]\npartition_frames = 1000\n", 5, "power of two from 256 to 65536");
  expect_error(minimal + "[[chain.eq.band]]\nfreq_hz = 5\n", 5, "accepted: 10 to 40000");
  expect_error(minimal + "[[chain.eq.band]]\ngain_db = 30\n", 5, "accepted: -24 to 24");
  expect_error(minimal + "[[chain.eq.band]]\nq = 0\n", 5, "accepted: 0.1 to 20");
  expect_error(minimal + "[chain.limiter]\nlookahead_ms = 25\n", 5, "accepted: 0.5 to 20");
  expect_error(minimal + "[chain.limiter]\nrelease_ms = 1\n", 5, "accepted: 5 to 2000");
  expect_error(minimal + "[chain.limiter]\nmargin_db = -0.1\n", 5, "accepted: 0 to 1");
}

TEST_F(profile_test, bad_enums) {
  expect_error("[loudness]\ntarget_lufs = -14\nceiling_dbtp = -1\nnormalization = \"soft\"\n", 4,
               "\"limit\" or \"linear\"");
  expect_error(minimal + "[output]\ncontainer = \"mp3\"\n", 5, "\"flac\" or \"wav\"");
  expect_error(minimal + "[output]\nnoise_shaping = \"pow-r\"\n", 5, "\"f_weighted\"");
  expect_error(minimal + "[output]\nsample_rate_hz = \"native\"\n", 5, "\"source\"");
  expect_error(minimal + "[[chain.eq.band]]\ntype = \"notch\"\n", 5, "\"bell\"");
}

TEST_F(profile_test, inconsistent_combinations) {
  expect_error(minimal + "[output]\nbit_depth = 32\ncontainer = \"flac\"\n", 5, "container = \"wav\"");
  expect_error(minimal + "[output]\nbit_depth = 32\n", 5, "container = \"wav\"");  // flac is the default
  expect_error(minimal + "[output]\ncontainer = \"wav\"\nbit_depth = 32\nnoise_shaping = \"first_order\"\n", 7,
               "noise_shaping applies only");
  expect_error(minimal + "[output]\nsample_rate_hz = 48000\nmin_sample_rate_hz = 44100\n", 6,
               "only with sample_rate_hz = \"source\"");
}

TEST_F(profile_test, missing_required_and_bad_name) {
  expect_error("[loudness]\nceiling_dbtp = -1\n", 1, "needs target_lufs");
  expect_error("[loudness]\ntarget_lufs = -14\n", 1, "needs ceiling_dbtp");
  expect_error("name = \"a\"\n", 1, "missing [loudness]");
  expect_error("name = \"../escape\"\n" + minimal, 1, "profile name");
}

TEST_F(profile_test, malformed_toml_reports_line_and_column) {
  expect_error("[loudness]\ntarget_lufs = -14\nceiling_dbtp = = -1\n", 3, "");
  expect_error("[loudness\ntarget_lufs = -14\n", 1, "");
  expect_error(minimal + "[loudness]\n", 4, "");  // redefined table
}

TEST_F(profile_test, missing_file) {
  try {
    load_profile(dir_ / "nope.toml");
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
  }
}

TEST_F(profile_test, duplicate_names_in_a_directory_name_both_files) {
  write("a.toml", "name = \"same\"\n" + minimal);
  write("b.toml", "name = \"same\"\n" + minimal);
  write("ignored.txt", "not a profile");
  try {
    load_profiles_dir(dir_);
    ADD_FAILURE();
  } catch (const config_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find((dir_ / "a.toml").string()), std::string::npos) << w;
    EXPECT_NE(w.find((dir_ / "b.toml").string()), std::string::npos) << w;
    EXPECT_NE(w.find("\"same\""), std::string::npos) << w;
  }
}

TEST_F(profile_test, directory_stops_at_the_first_bad_file) {
  write("a.toml", minimal);
  write("b.toml", "[loudness]\ntarget_lufs = 3\nceiling_dbtp = -1\n");
  try {
    load_profiles_dir(dir_);
    ADD_FAILURE();
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind((dir_ / "b.toml").string() + ":2:", 0), 0u) << e.what();
  }
}

}  // namespace

namespace lathe {
namespace {

class ChainSchema : public profile_test {};

TEST_F(ChainSchema, OrderAndStagesAreReadStrictly) {
  const fs::path ok = write("chain.toml", minimal + R"(
[chain]
order = ["highpass", "deesser", "multiband", "stereo", "saturation"]
[chain.deesser]
threshold_db = -28
[chain.multiband]
crossovers_hz = [200, 3000]
[[chain.multiband.band]]
ratio = 2
[[chain.multiband.band]]
ratio = 1.5
[[chain.multiband.band]]
ratio = 3
detector = "rms"
[chain.stereo]
bass_mono_below_hz = 150
[chain.saturation]
drive_db = 3
mix = 0.25
)");
  const delivery_profile p = load_profile(ok);
  ASSERT_EQ(p.chain_order.size(), 5u);
  EXPECT_EQ(p.chain_order[1], chain_stage::deesser);
  EXPECT_EQ(p.deesser.threshold_db, -28.0);
  ASSERT_EQ(p.multiband.bands.size(), 3u);
  EXPECT_EQ(p.multiband.bands[2].ratio, 3.0);
  EXPECT_EQ(p.multiband.bands[2].detector, level_detector::rms);
  EXPECT_EQ(p.stereo.bass_mono_below_hz, 150.0);
  EXPECT_EQ(p.saturation.mix, 0.25);
  // The order and every stage setting are part of the fingerprints.
  delivery_profile q = p;
  q.multiband.bands[0].ratio = 2.5;
  EXPECT_NE(chain_fingerprint(p), chain_fingerprint(q));
  EXPECT_NE(profile_fingerprint(p), profile_fingerprint(q));
  q = p;
  std::swap(q.chain_order[1], q.chain_order[2]);
  EXPECT_NE(chain_fingerprint(p), chain_fingerprint(q));

  expect_error(minimal + "[chain]\norder = [\"highpass\", \"comp\"]\n", 5, "unknown stage `comp`");
  expect_error(minimal + "[chain]\norder = [\"eq\", \"eq\"]\n", 5, "listed twice");
  expect_error(minimal + "[chain]\norder = [\"highpass\"]\n[chain.stereo]\nwidth = 1.2\n", 6,
               "is not in `chain.order`");
  expect_error(minimal + "[chain]\norder = [\"reverb\"]\n", 4, "names no `ir`");
  expect_error(minimal + "[chain]\norder = [\"multiband\"]\n[chain.multiband]\ncrossovers_hz = [300, 200]\n", 7,
               "must ascend");
  expect_error(minimal +
                   "[chain]\norder = [\"multiband\"]\n[chain.multiband]\ncrossovers_hz = [300]\n"
                   "[[chain.multiband.band]]\nratio = 2\n",
               8, "must be 2 tables");
  expect_error(minimal + "[chain]\norder = [\"stereo\"]\n[chain.stereo]\nwidth = 9\n", 7, "out of range");
}

TEST_F(ChainSchema, ShippedPresetsAndTheVinylProfileLoad) {
  const fs::path configs = fs::path(LATHE_SOURCE_DIR) / "configs";
  std::size_t presets = 0;
  for (const auto& e : fs::directory_iterator(configs / "chains")) {
    delivery_profile p = load_profile(configs / "streaming.toml");
    const std::string before = profile_fingerprint(p);
    apply_chain_preset(e.path(), p);
    EXPECT_EQ(p.target_lufs, -14.0) << "a preset changes the chain only";
    EXPECT_NE(profile_fingerprint(p), before) << e.path();
    ++presets;
  }
  EXPECT_EQ(presets, 5u);
  {
    delivery_profile a = load_profile(configs / "streaming.toml");
    apply_chain_preset(configs / "chains" / "adaptive.toml", a);
    EXPECT_TRUE(a.adaptive.enabled);
    EXPECT_EQ(a.adaptive.target_file, configs / "targets" / "smooth-tilt.toml");
    EXPECT_DOUBLE_EQ(a.adaptive.eq, 0.5);
  }
  const delivery_profile v = load_profile(configs / "vinyl.toml");
  EXPECT_EQ(v.normalization, normalization_mode::linear);  // no brickwall limiting
  EXPECT_EQ(v.sample_rate_hz.value_or(0), 96'000.0);
  EXPECT_EQ(v.bit_depth, 24);
  EXPECT_EQ(v.stereo.bass_mono_below_hz, 150.0);
  EXPECT_NE(std::find(v.chain_order.begin(), v.chain_order.end(), chain_stage::deesser), v.chain_order.end());
  // A preset's own errors name the preset file.
  const fs::path bad = write("badchain.toml", "[chain]\norder = [\"nope\"]\n");
  delivery_profile p = v;
  try {
    apply_chain_preset(bad, p);
    ADD_FAILURE() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(bad.string() + ":2:", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace lathe
