// Adaptive mastering decisions: amounts, auto-EQ toward a target, album consistency, width,
// auto dynamics, loudness amount, and the [adaptive] profile table.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <complex>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <fftw3.h>

#include "lathe/adaptive.hpp"
#include "lathe/error.hpp"
#include "lathe/master.hpp"
#include "lathe/multiband.hpp"
#include "lathe/profile.hpp"
#include "lathe/tonal.hpp"

namespace fs = std::filesystem;
using namespace lathe;

namespace {

constexpr double fs_hz = 44'100.0;
// Tolerances.
constexpr double spread_reduction_needed = 0.35;  // album consistency 100 %: spread after <= 35 % of before
constexpr double threshold_tolerance_db = 0.05;   // thresholds follow a level change exactly
constexpr double gain_reduction_tolerance_db = 0.3;
constexpr double side_gain_tolerance_db = 0.01;

// Stereo noise whose 1/3-octave band levels fall `tilt_db_per_octave` per octave (pink: 0),
// made in the frequency domain in float64; the side is independent noise `side_db` under the mid.
audio_buffer tilted_noise(double tilt_db_per_octave, double rms_dbfs, std::size_t n, std::uint32_t seed,
                          double side_db = -6.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  auto make = [&]() {
    std::vector<std::complex<double>> spec(n / 2 + 1);
    for (std::size_t k = 1; k < spec.size(); ++k) {
      const double f = static_cast<double>(k) * fs_hz / static_cast<double>(n);
      const double amp = std::pow(f, -0.5) * std::pow(10.0, tilt_db_per_octave / 20.0 * std::log2(f / 1'000.0));
      spec[k] = amp * std::complex<double>(g(rng), g(rng));
    }
    return spec;
  };
  // FFTW_ESTIMATE does not touch the arrays while planning; c2r consumes its input.
  auto to_time = [&](std::vector<std::complex<double>> spec) {
    std::vector<double> x(n);
    fftw_plan plan = fftw_plan_dft_c2r_1d(static_cast<int>(n), reinterpret_cast<fftw_complex*>(spec.data()), x.data(),
                                          FFTW_ESTIMATE);
    fftw_execute(plan);
    fftw_destroy_plan(plan);
    return x;
  };
  const std::vector<double> mid = to_time(make());
  const std::vector<double> side = to_time(make());
  double ms = 0.0, ss = 0.0;
  for (std::size_t i = 0; i < n; ++i) ms += mid[i] * mid[i], ss += side[i] * side[i];
  const double side_scale = std::sqrt(ms / ss) * std::pow(10.0, side_db / 20.0);
  audio_buffer b(2, n);
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double l = mid[i] + side_scale * side[i], r = mid[i] - side_scale * side[i];
    sum += l * l + r * r;
  }
  const double scale = std::pow(10.0, rms_dbfs / 20.0) / std::sqrt(sum / (2.0 * static_cast<double>(n)));
  for (std::size_t i = 0; i < n; ++i) {
    b.channel(0)[i] = static_cast<float>(scale * (mid[i] + side_scale * side[i]));
    b.channel(1)[i] = static_cast<float>(scale * (mid[i] - side_scale * side[i]));
  }
  return b;
}

delivery_profile adaptive_profile() {
  delivery_profile p;
  p.name = "test";
  p.adaptive.enabled = true;
  p.chain_order = {chain_stage::highpass};
  p.highpass.cutoff_hz = 0.0;
  return p;
}

target_curve pink_target() {
  target_curve t;
  t.name = "pink";
  return t;  // flat, no width target
}

TEST(Adaptive, AllAmountsZeroLeaveTheChainAndTheAudioBitIdentical) {
  const audio_buffer x = tilted_noise(-3.0, -20.0, 1 << 17, 1);
  const tonal_analysis t = analyze_tonal(x, fs_hz);
  const target_curve target = pink_target();
  delivery_profile p = adaptive_profile();
  p.adaptive.eq = p.adaptive.width = p.adaptive.dynamics = 0.0;
  adaptation_input in;
  in.tonal = &t;
  in.target = &target;
  nlohmann::json report;
  const delivery_profile q = adapt_profile(p, in, &report);
  EXPECT_EQ(chain_fingerprint(q), chain_fingerprint(p));
  EXPECT_FALSE(report.contains("eq"));
  const audio_buffer a = apply_prechain(x, fs_hz, p), b = apply_prechain(x, fs_hz, q);
  for (int c = 0; c < 2; ++c)
    EXPECT_EQ(0, std::memcmp(a.channel(c), b.channel(c), a.frames() * sizeof(float))) << "channel " << c;
}

TEST(Adaptive, AlbumConsistencyReducesTheTonalSpreadOfATiltedAlbum) {
  // Four tracks of one album, deliberately tilted -2, -1, +1, +2 dB/octave.
  std::vector<audio_buffer> tracks;
  std::vector<tonal_analysis> before;
  for (double tilt : {-2.0, -1.0, 1.0, 2.0}) {
    tracks.push_back(tilted_noise(tilt, -20.0, 1 << 18, static_cast<std::uint32_t>(10 + tilt)));
    before.push_back(analyze_tonal(tracks.back(), fs_hz));
  }
  const target_curve album = mean_target(before, "album", "test");
  delivery_profile p = adaptive_profile();
  p.adaptive.album_consistency = 1.0;
  p.adaptive.max_eq_db = 12.0;
  std::vector<tonal_analysis> after;
  for (std::size_t i = 0; i < tracks.size(); ++i) {
    adaptation_input in;
    in.tonal = &before[i];
    in.album_mean = &album;
    const delivery_profile q = adapt_profile(p, in, nullptr);
    after.push_back(analyze_tonal(apply_prechain(tracks[i], fs_hz, q), fs_hz));
  }
  const double spread_before = tonal_spread_db(before), spread_after = tonal_spread_db(after);
  EXPECT_GT(spread_before, 3.0);  // the album really is inconsistent
  EXPECT_LT(spread_after, spread_reduction_needed * spread_before)
      << "spread before " << spread_before << " dB, after " << spread_after << " dB";

  // Half the amount: the spread falls, but less.
  p.adaptive.album_consistency = 0.5;
  std::vector<tonal_analysis> half;
  for (std::size_t i = 0; i < tracks.size(); ++i) {
    adaptation_input in;
    in.tonal = &before[i];
    in.album_mean = &album;
    half.push_back(analyze_tonal(apply_prechain(tracks[i], fs_hz, adapt_profile(p, in, nullptr)), fs_hz));
  }
  EXPECT_GT(tonal_spread_db(half), spread_after);
  EXPECT_LT(tonal_spread_db(half), spread_before);
}

TEST(Adaptive, AutoDynamicsThresholdsFollowTheMaterialSoLoudAndQuietLandAlike) {
  const audio_buffer loud = tilted_noise(-1.5, -14.0, 1 << 18, 3);
  audio_buffer quiet = loud;
  const float g = std::pow(10.0f, -20.0f / 20.0f);
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < quiet.frames(); ++i) quiet.channel(c)[i] *= g;
  delivery_profile p = adaptive_profile();
  p.adaptive.dynamics = 1.0;
  p.adaptive.intent = dynamics_intent::firm;
  const tonal_analysis tl = analyze_tonal(loud, fs_hz), tq = analyze_tonal(quiet, fs_hz);
  adaptation_input il, iq;
  il.tonal = &tl;
  iq.tonal = &tq;
  nlohmann::json rl, rq;
  const delivery_profile pl = adapt_profile(p, il, &rl), pq = adapt_profile(p, iq, &rq);
  ASSERT_EQ(pl.multiband.bands.size(), 4u);
  ASSERT_TRUE(std::find(pl.chain_order.begin(), pl.chain_order.end(), chain_stage::multiband) != pl.chain_order.end());
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_NEAR(pl.multiband.bands[k].threshold_db - pq.multiband.bands[k].threshold_db, 20.0, threshold_tolerance_db)
        << "band " << k;
    EXPECT_DOUBLE_EQ(pl.multiband.bands[k].ratio, 3.0);
  }
  ASSERT_EQ(rl["dynamics"]["bands"].size(), 4u);
  // The same material at two levels gets the same gain reduction.
  stream_spec spec{fs_hz, 2, 8192};
  auto reduction = [&](const delivery_profile& q, const audio_buffer& x) {
    multiband_stage mb(q.multiband);
    mb.prepare(spec);
    audio_buffer y = x;
    run_aligned(mb, y, spec.max_block_frames);
    std::vector<double> r;
    for (int k = 0; k < mb.band_count(); ++k) r.push_back(mb.band_stats(k).mean_gain_reduction_db);
    return r;
  };
  const std::vector<double> a = reduction(pl, loud), b = reduction(pq, quiet);
  double total = 0.0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    EXPECT_NEAR(a[k], b[k], gain_reduction_tolerance_db) << "band " << k;
    total += a[k];
  }
  EXPECT_GT(total, 0.5);  // firm intent really compresses
}

TEST(Adaptive, WidthMovesTheSideLevelTowardTheTargetByTheAmount) {
  const audio_buffer x = tilted_noise(0.0, -20.0, 1 << 17, 5, -12.0);
  const tonal_analysis t = analyze_tonal(x, fs_hz);
  target_curve target = pink_target();
  EXPECT_FALSE(target.has_width());  // a default target says nothing about width
  for (int k = 0; k < third_octave_band_count; ++k) target.width_db[k] = t.width_db[k] + 3.0;
  EXPECT_TRUE(target.has_width());
  delivery_profile p = adaptive_profile();
  p.adaptive.width = 0.5;
  adaptation_input in;
  in.tonal = &t;
  in.target = &target;
  nlohmann::json r;
  const delivery_profile q = adapt_profile(p, in, &r);
  EXPECT_NEAR(20.0 * std::log10(q.stereo.width), 1.5, side_gain_tolerance_db);
  EXPECT_TRUE(std::find(q.chain_order.begin(), q.chain_order.end(), chain_stage::stereo) != q.chain_order.end());
  EXPECT_NEAR(r["width"]["side_gain_db"].get<double>(), 1.5, side_gain_tolerance_db);
}

TEST(Adaptive, LoudnessAmountMovesThatFractionOfTheWay) {
  EXPECT_DOUBLE_EQ(adapted_target_lufs(-14.0, -24.0, 1.0), -14.0);
  EXPECT_DOUBLE_EQ(adapted_target_lufs(-14.0, -24.0, 0.0), -24.0);
  EXPECT_DOUBLE_EQ(adapted_target_lufs(-14.0, -24.0, 0.25), -21.5);
  EXPECT_DOUBLE_EQ(adapted_target_lufs(-14.0, -std::numeric_limits<double>::infinity(), 0.5), -14.0);
}

TEST(Adaptive, ManifestAmountsOverrideTheProfile) {
  const audio_buffer x = tilted_noise(-3.0, -20.0, 1 << 17, 7);
  const tonal_analysis t = analyze_tonal(x, fs_hz);
  const target_curve target = pink_target();
  delivery_profile p = adaptive_profile();
  p.adaptive.eq = 1.0;
  adaptation_input in;
  in.tonal = &t;
  in.target = &target;
  in.amounts.eq = 0.0;
  EXPECT_EQ(chain_fingerprint(adapt_profile(p, in, nullptr)), chain_fingerprint(p));
  in.amounts.eq = 1.0;
  EXPECT_NE(chain_fingerprint(adapt_profile(p, in, nullptr)), chain_fingerprint(p));
}

class adaptive_profile_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(LATHE_BINARY_DIR) / "test-tmp" /
           (std::string("adaptive-") + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "targets");
    std::ofstream(dir_ / "targets" / "flat.toml")
        << "name = \"flat\"\ndescription = \"test\"\nderived_from = \"test\"\n"
           "mid_db = [" +
               [] {
                 std::string s;
                 for (int k = 0; k < third_octave_band_count; ++k) s += k ? ", 0" : "0";
                 return s;
               }() +
               "]\n";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path write(const std::string& body) {
    const fs::path f = dir_ / "p.toml";
    std::ofstream(f) << "[loudness]\ntarget_lufs = -14\nceiling_dbtp = -1\n" << body;
    return f;
  }
  fs::path dir_;
};

TEST_F(adaptive_profile_test, AdaptiveTableIsReadInPercentAndFindsItsTarget) {
  const delivery_profile p = load_profile(
      write("[adaptive]\ntarget = \"flat\"\neq = 60\nwidth = 10\ndynamics = 25\nloudness = 90\nalbum_consistency = 50\n"
            "max_eq_db = 3\ndynamics_intent = \"moderate\"\n"));
  EXPECT_TRUE(p.adaptive.enabled);
  EXPECT_DOUBLE_EQ(p.adaptive.eq, 0.6);
  EXPECT_DOUBLE_EQ(p.adaptive.width, 0.1);
  EXPECT_DOUBLE_EQ(p.adaptive.dynamics, 0.25);
  EXPECT_DOUBLE_EQ(p.adaptive.loudness, 0.9);
  EXPECT_DOUBLE_EQ(p.adaptive.album_consistency, 0.5);
  EXPECT_DOUBLE_EQ(p.adaptive.max_eq_db, 3.0);
  EXPECT_EQ(p.adaptive.intent, dynamics_intent::moderate);
  EXPECT_EQ(p.adaptive.target_file, dir_ / "targets" / "flat.toml");
  EXPECT_FALSE(load_profile(write("")).adaptive.enabled);
}

TEST_F(adaptive_profile_test, BadAdaptiveSettingsNameFileLineAndReason) {
  auto error_of = [&](const std::string& body) {
    try {
      (void)load_profile(write(body));
    } catch (const config_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("[adaptive]\neq = 150\n").find("p.toml:5:"), std::string::npos)
      << error_of("[adaptive]\neq = 150\n");
  EXPECT_NE(error_of("[adaptive]\neq = 150\n").find("0 to 100"), std::string::npos);
  EXPECT_NE(error_of("[adaptive]\nwidht = 10\n").find("unknown key `adaptive.widht`"), std::string::npos);
  EXPECT_NE(error_of("[adaptive]\ntarget = \"nope\"\n").find("no such target curve"), std::string::npos);
  EXPECT_NE(error_of("[adaptive]\ndynamics_intent = \"brutal\"\n").find("gentle, moderate or firm"), std::string::npos);
}

}  // namespace
