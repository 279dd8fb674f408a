// Decoding and encoding: bit-exact round trips against libsndfile / libFLAC as the independent
// reader or writer, every input error kind from a file made here, and atomic replacement.
#include <FLAC/metadata.h>
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "lathe/audio_io.hpp"
#include "lathe/error.hpp"
#include "support/signals.hpp"

namespace fs = std::filesystem;
using namespace lathe;

namespace {

// Integer PCM read as float is an exact power-of-two scaling: no tolerance at all.
constexpr float exact_tolerance = 0.0f;
// Lossy codecs at high quality: level within this of the source sine's analytic RMS...
constexpr double lossy_rms_tolerance_db = 0.2;
// ...and the coding error at least this far under the signal (time-aligned decoders).
constexpr double lossy_snr_min_db = 25.0;

class temp_dir_test : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name =
        std::string("audio_io-") + info->test_suite_name() + "-" + info->name() + "-" + std::to_string(::getpid());
    std::replace(name.begin(), name.end(), '/', '_');  // parameterized names hold slashes
    dir_ = fs::path(LATHE_BINARY_DIR) / "test-tmp" / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path file(const std::string& name) const { return dir_ / name; }
  /// Every entry in the test folder (to spot leftover temporaries).
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

/// Deterministic full-range integers for `bits`, including both extremes.
std::vector<std::int32_t> random_ints(std::size_t count, int bits, std::uint32_t seed = 7) {
  const std::int64_t hi = (std::int64_t{1} << (bits - 1)) - 1, lo = -hi - 1;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int64_t> d(lo, hi);
  std::vector<std::int32_t> v(count);
  for (auto& x : v) x = static_cast<std::int32_t>(d(rng));
  if (count >= 2) {
    v[0] = static_cast<std::int32_t>(hi);
    v[1] = static_cast<std::int32_t>(lo);
  }
  return v;
}

SNDFILE* sf_create(const fs::path& p, int format, int channels, int rate) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  return f;
}

/// Reference writer: libsndfile directly, integers right-justified in `ints`, the tags set
/// before the audio.
void sf_write_ints(const fs::path& p, int format, int channels, int rate, const std::vector<std::int32_t>& ints,
                   int bits, const track_tags& tags = {}) {
  SNDFILE* f = sf_create(p, format, channels, rate);
  ASSERT_NE(f, nullptr);
  if (!tags.title.empty()) sf_set_string(f, SF_STR_TITLE, tags.title.c_str());
  if (!tags.artist.empty()) sf_set_string(f, SF_STR_ARTIST, tags.artist.c_str());
  if (!tags.album.empty()) sf_set_string(f, SF_STR_ALBUM, tags.album.c_str());
  if (tags.track_number > 0) sf_set_string(f, SF_STR_TRACKNUMBER, std::to_string(tags.track_number).c_str());
  std::vector<int> left(ints.size());
  for (std::size_t i = 0; i < ints.size(); ++i)
    left[i] = static_cast<int>(static_cast<std::uint32_t>(ints[i]) << (32 - bits));
  const sf_count_t frames = static_cast<sf_count_t>(ints.size() / static_cast<std::size_t>(channels));
  ASSERT_EQ(sf_writef_int(f, left.data(), frames), frames);
  sf_close(f);
}

void sf_write_floats(const fs::path& p, int format, int channels, int rate, const std::vector<float>& x,
                     double vbr_quality = -1.0) {
  SNDFILE* f = sf_create(p, format, channels, rate);
  ASSERT_NE(f, nullptr);
  if (vbr_quality >= 0) sf_command(f, SFC_SET_VBR_ENCODING_QUALITY, &vbr_quality, sizeof vbr_quality);
  const sf_count_t frames = static_cast<sf_count_t>(x.size() / static_cast<std::size_t>(channels));
  ASSERT_EQ(sf_writef_float(f, x.data(), frames), frames);
  sf_close(f);
}

/// Reference reader: libsndfile, integers shifted back down to `bits`.
std::vector<std::int32_t> sf_read_ints(const fs::path& p, int bits, SF_INFO& info) {
  info = SF_INFO{};
  SNDFILE* f = sf_open(p.c_str(), SFM_READ, &info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  if (!f) return {};
  std::vector<int> raw(static_cast<std::size_t>(info.frames * info.channels));
  EXPECT_EQ(sf_readf_int(f, raw.data(), info.frames), info.frames);
  sf_close(f);
  std::vector<std::int32_t> out(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) out[i] = raw[i] >> (32 - bits);
  return out;
}

/// Interleaved stereo sine, amplitude `peak`.
std::vector<float> stereo_sine(double freq_hz, double peak, std::size_t frames, double fs_hz) {
  std::vector<float> x(frames * 2);
  for (std::size_t i = 0; i < frames; ++i) {
    const float v = static_cast<float>(peak * std::sin(2.0 * M_PI * freq_hz * static_cast<double>(i) / fs_hz));
    x[2 * i] = v;
    x[2 * i + 1] = v;
  }
  return x;
}

void expect_decoded_ints(const decoded_track& t, const std::vector<std::int32_t>& ints, int channels, int bits) {
  const std::size_t frames = ints.size() / static_cast<std::size_t>(channels);
  ASSERT_EQ(t.audio.channels(), 2);
  ASSERT_EQ(t.audio.frames(), frames);
  const double scale = std::ldexp(1.0, -(bits - 1));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < frames; ++i) {
    for (int c = 0; c < 2; ++c) {
      const int src_c = channels == 1 ? 0 : c;
      const float ref = static_cast<float>(
          static_cast<double>(ints[i * static_cast<std::size_t>(channels) + static_cast<std::size_t>(src_c)]) * scale);
      if (std::fabs(t.audio.channel(c)[i] - ref) > exact_tolerance) ++mismatches;
    }
  }
  EXPECT_EQ(mismatches, 0u);
}

struct int_case {
  const char* name;
  int format;
  int bits;
  const char* container;
  const char* encoding;
};

class decode_int_round_trip : public temp_dir_test, public ::testing::WithParamInterface<int_case> {};

TEST_P(decode_int_round_trip, exact_scaling_and_info) {
  const int_case& c = GetParam();
  constexpr int rate = 44'100;
  constexpr std::size_t frames = 50'001;  // not a multiple of the decoder's chunk
  const auto ints = random_ints(frames * 2, c.bits);
  const fs::path p = file(std::string("in.") + c.container);
  sf_write_ints(p, c.format, 2, rate, ints, c.bits);
  const decoded_track t = decode_file(p);
  expect_decoded_ints(t, ints, 2, c.bits);
  EXPECT_EQ(t.info.container, c.container);
  EXPECT_EQ(t.info.encoding, c.encoding);
  EXPECT_EQ(t.info.bit_depth, c.bits);
  EXPECT_EQ(t.info.sample_rate_hz, rate);
  EXPECT_EQ(t.info.channels, 2);
  EXPECT_EQ(t.info.frames, frames);
  EXPECT_EQ(t.info.file_bytes, fs::file_size(p));
  EXPECT_EQ(t.info.path, p);
}

INSTANTIATE_TEST_SUITE_P(formats, decode_int_round_trip,
                         ::testing::Values(int_case{"wav16", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16, "wav", "pcm16"},
                                           int_case{"wav24", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 24, "wav", "pcm24"},
                                           int_case{"wav32", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 32, "wav", "pcm32"},
                                           int_case{"aiff16", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 16, "aiff", "pcm16"},
                                           int_case{"flac16", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16, "flac", "pcm16"},
                                           int_case{"flac24", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 24, "flac", "pcm24"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(temp_dir_test, decode_float_wav_is_bit_exact) {
  std::vector<float> x = stereo_sine(997.0, 1.2, 20'000, 48'000.0);  // over full scale on purpose
  x[10] = 1e-40f;                                                    // subnormal survives
  x[11] = -0.0f;
  const fs::path p = file("float.wav");
  sf_write_floats(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 48'000, x);
  const decoded_track t = decode_file(p);
  EXPECT_EQ(t.info.encoding, "float");
  EXPECT_EQ(t.info.bit_depth, 0);
  ASSERT_EQ(t.audio.frames(), 20'000u);
  for (std::size_t i = 0; i < 20'000; ++i) {
    ASSERT_EQ(std::memcmp(&t.audio.channel(0)[i], &x[2 * i], 4), 0) << "frame " << i;
    ASSERT_EQ(std::memcmp(&t.audio.channel(1)[i], &x[2 * i + 1], 4), 0) << "frame " << i;
  }
}

TEST_F(temp_dir_test, decode_mono_gives_dual_mono) {
  const auto ints = random_ints(30'000, 16, 11);
  const fs::path p = file("mono.wav");
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 22'050, ints, 16);
  const decoded_track t = decode_file(p);
  EXPECT_EQ(t.info.channels, 1);
  expect_decoded_ints(t, ints, 1, 16);
}

TEST_F(temp_dir_test, decode_accepts_the_rate_range_limits) {
  for (int rate : {8'000, 384'000}) {
    const fs::path p = file("r" + std::to_string(rate) + ".wav");
    const auto ints = random_ints(2'000, 24);
    sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2, rate, ints, 24);
    const decoded_track t = decode_file(p);
    EXPECT_EQ(t.info.sample_rate_hz, rate);
    expect_decoded_ints(t, ints, 2, 24);
  }
}

/// Encodes a loud 1 kHz sine (2 s) with libsndfile at high quality, decodes it with lathe and
/// checks the RMS against the sine's analytic RMS and (when `aligned`) the coding error.
void check_lossy(const fs::path& p, int format, int rate, const char* container, const char* encoding, bool aligned) {
  constexpr double peak = 0.7;
  const std::size_t frames = 2 * static_cast<std::size_t>(rate);
  const auto x = stereo_sine(1'000.0, peak, frames, rate);
  sf_write_floats(p, format, 2, rate, x, 0.9);
  const decoded_track t = decode_file(p);
  EXPECT_EQ(t.info.container, container);
  EXPECT_EQ(t.info.encoding, encoding);
  EXPECT_EQ(t.info.bit_depth, 0);
  ASSERT_EQ(t.audio.frames(), frames);
  // Skip the codec's start-up and end: half a second each side.
  const std::size_t skip = static_cast<std::size_t>(rate / 2);
  double sig = 0, err = 0;
  for (std::size_t i = skip; i < frames - skip; ++i) {
    const double d = t.audio.channel(0)[i];
    sig += d * d;
    err += (d - x[2 * i]) * (d - x[2 * i]);
  }
  const double n = static_cast<double>(frames - 2 * skip);
  const double rms_db = 10.0 * std::log10(sig / n);
  const double ref_db = 20.0 * std::log10(peak / std::sqrt(2.0));
  EXPECT_NEAR(rms_db, ref_db, lossy_rms_tolerance_db);
  if (aligned) {
    EXPECT_GT(10.0 * std::log10(sig / err), lossy_snr_min_db);
  }
}

TEST_F(temp_dir_test, decode_ogg_vorbis_sine_within_tolerance) {
  check_lossy(file("sine.ogg"), SF_FORMAT_OGG | SF_FORMAT_VORBIS, 48'000, "ogg", "vorbis", true);
}

TEST_F(temp_dir_test, decode_opus_sine_within_tolerance) {
  check_lossy(file("sine.opus"), SF_FORMAT_OGG | SF_FORMAT_OPUS, 48'000, "ogg", "opus", true);
}

TEST_F(temp_dir_test, decode_mp3_sine_within_tolerance) {
  // Encoder delay handling is libsndfile's business: level only, no sample alignment.
  check_lossy(file("sine.mp3"), SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44'100, "mp3", "mp3", false);
}

TEST_F(temp_dir_test, tags_are_read_and_track_number_is_lenient) {
  const fs::path p = file("tagged.wav");
  SNDFILE* f = sf_create(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 44'100);
  ASSERT_NE(f, nullptr);
  sf_set_string(f, SF_STR_TITLE, "Song, with comma");
  sf_set_string(f, SF_STR_ARTIST, "Artiste");
  sf_set_string(f, SF_STR_ALBUM, "Album");
  sf_set_string(f, SF_STR_TRACKNUMBER, "3/12");
  std::vector<short> s(2'000, 100);
  sf_writef_short(f, s.data(), 1'000);
  sf_close(f);
  const source_info i = probe_file(p);
  EXPECT_EQ(i.tags.title, "Song, with comma");
  EXPECT_EQ(i.tags.artist, "Artiste");
  EXPECT_EQ(i.tags.album, "Album");
  EXPECT_EQ(i.tags.track_number, 3);
  EXPECT_EQ(i.frames, 1'000u);
}

// ---- input errors -----------------------------------------------------------------------------

/// Runs `fn`, expects input_error naming `p` with a reason holding every one of `needles`.
template <class Fn>
void expect_input_error(Fn fn, const fs::path& p, std::initializer_list<const char*> needles) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << p;
  } catch (const input_error& e) {
    EXPECT_EQ(e.path(), p.string());
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    for (const char* n : needles)
      EXPECT_NE(e.reason().find(n), std::string::npos) << "'" << n << "' not in: " << e.reason();
  }
}

void expect_decode_error(const fs::path& p, std::initializer_list<const char*> needles) {
  expect_input_error([&] { decode_file(p); }, p, needles);
}

TEST_F(temp_dir_test, error_missing_file) {
  const fs::path p = file("nope.wav");
  expect_decode_error(p, {"No such file"});
  expect_input_error([&] { probe_file(p); }, p, {"No such file"});
}

TEST_F(temp_dir_test, error_empty_file) {
  const fs::path p = file("empty.wav");
  std::ofstream(p).close();
  expect_decode_error(p, {"empty", "no audio"});
}

TEST_F(temp_dir_test, error_header_only_wav) {
  const fs::path p = file("zero.wav");
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 44'100, {}, 16);
  ASSERT_GT(fs::file_size(p), 0u);
  expect_decode_error(p, {"contains no audio"});
}

TEST_F(temp_dir_test, error_text_file_named_wav) {
  const fs::path p = file("notes.wav");
  std::ofstream(p) << "These are my mixing notes, not audio.\nMore text to pass any size check.\n";
  expect_decode_error(p, {"not an audio file", "libsndfile"});
}

TEST_F(temp_dir_test, error_truncated_wav) {
  const fs::path p = file("cut.wav");
  const auto ints = random_ints(2 * 48'000, 16);
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48'000, ints, 16);
  // 44-byte header; keep 24000 frames of 4 bytes: the header still declares 48000.
  fs::resize_file(p, 44 + 24'000 * 4);
  expect_decode_error(p, {"truncated", "48000", "24000", "0:00.500"});
  expect_input_error([&] { probe_file(p); }, p, {"truncated"});
}

TEST_F(temp_dir_test, error_truncated_aiff) {
  const fs::path p = file("cut.aiff");
  const auto ints = random_ints(2 * 48'000, 16);
  sf_write_ints(p, SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 2, 48'000, ints, 16);
  fs::resize_file(p, fs::file_size(p) / 2);
  expect_decode_error(p, {"truncated", "48000"});
}

TEST_F(temp_dir_test, error_corrupt_flac) {
  const fs::path p = file("bad.flac");
  constexpr std::size_t frames = 100'000;
  const auto ints = random_ints(2 * frames, 16);
  sf_write_ints(p, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44'100, ints, 16);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(p) / 2));
    const std::string junk(4'000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  expect_decode_error(p, {"corrupt", "of 100000 frames", "stopped at"});
}

TEST_F(temp_dir_test, error_three_channels) {
  const fs::path p = file("three.wav");
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 3, 44'100, random_ints(3'000, 16), 16);
  expect_decode_error(p, {"has 3 channels", "mono or stereo"});
}

TEST_F(temp_dir_test, error_nan_and_inf_samples) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    const bool nan = std::isnan(bad);
    const fs::path p = file(nan ? "nan.wav" : "inf.wav");
    auto x = stereo_sine(440.0, 0.5, 48'000, 48'000.0);
    x[2 * 36'000 + 1] = bad;  // channel 2 at 0.75 s
    x[2 * 40'000] = bad;      // a later one on channel 1 must not be the one reported
    sf_write_floats(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 48'000, x);
    expect_decode_error(p, {nan ? "NaN" : "infinite", "channel 2", "0:00.750"});
  }
}

TEST_F(temp_dir_test, error_rate_out_of_range) {
  const fs::path p = file("low.wav");
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 4'000, random_ints(4'000, 16), 16);
  expect_decode_error(p, {"4000 Hz", "8000 to 384000"});
}

TEST_F(temp_dir_test, error_folder_instead_of_file) {
  const fs::path p = file("folder.wav");
  fs::create_directories(p);
  expect_decode_error(p, {"folder"});
}

// ---- streaming reader -------------------------------------------------------------------------

/// One frame, a small prime, the render's usual block, and a prime past the decoder's chunk.
constexpr std::size_t reader_block_sizes[] = {1, 7, 4'096, 65'537};

/// Reference decode: libsndfile's sf_readf_float over the whole file in one call, deinterleaved,
/// mono duplicated to dual mono.
audio_buffer sf_read_planar(const fs::path& p) {
  SF_INFO info{};
  SNDFILE* f = sf_open(p.c_str(), SFM_READ, &info);
  EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
  if (!f) return {};
  const auto ch = static_cast<std::size_t>(info.channels);
  std::vector<float> x(static_cast<std::size_t>(info.frames) * ch);
  const auto got = static_cast<std::size_t>(sf_readf_float(f, x.data(), info.frames));
  sf_close(f);
  audio_buffer out(2, got);
  for (std::size_t i = 0; i < got; ++i) {
    out.channel(0)[i] = x[i * ch];
    out.channel(1)[i] = x[i * ch + ch - 1];
  }
  return out;
}

/// Frames, then every sample's bits.
::testing::AssertionResult bitwise_equal(const audio_buffer& a, const audio_buffer& b) {
  if (a.channels() != b.channels() || a.frames() != b.frames())
    return ::testing::AssertionFailure() << a.channels() << "x" << a.frames() << " vs " << b.channels() << "x"
                                         << b.frames();
  for (int c = 0; c < a.channels(); ++c) {
    for (std::size_t i = 0; i < a.frames(); ++i) {
      if (std::memcmp(&a.channel(c)[i], &b.channel(c)[i], sizeof(float)) != 0)
        return ::testing::AssertionFailure()
               << "channel " << c << " frame " << i << ": " << a.channel(c)[i] << " vs " << b.channel(c)[i];
    }
  }
  return ::testing::AssertionSuccess();
}

/// Everything an audio_reader delivers in blocks of `block` frames, with its final info.
audio_buffer read_in_blocks(const fs::path& p, std::size_t block, source_info& info) {
  audio_reader reader(p);
  audio_buffer buf(2, block);
  std::vector<float> left, right;
  std::size_t short_reads = 0;
  while (const std::size_t n = reader.read(buf.view())) {
    EXPECT_LE(n, block);
    if (n < block) ++short_reads;  // only the last
    left.insert(left.end(), buf.channel(0), buf.channel(0) + n);
    right.insert(right.end(), buf.channel(1), buf.channel(1) + n);
  }
  EXPECT_LE(short_reads, 1u);
  EXPECT_EQ(reader.read(buf.view()), 0u);  // the end stays the end
  info = reader.info();
  audio_buffer out(2, left.size());
  std::copy(left.begin(), left.end(), out.channel(0));
  std::copy(right.begin(), right.end(), out.channel(1));
  return out;
}

TEST_F(temp_dir_test, reader_in_any_block_size_is_bitwise_decode_file) {
  std::vector<fs::path> files;
  auto add_ints = [&](const char* name, int format, int channels, int rate, std::size_t frames, int bits) {
    files.push_back(file(name));
    sf_write_ints(files.back(), format, channels, rate, random_ints(frames * static_cast<std::size_t>(channels), bits),
                  bits);
  };
  add_ints("mono16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 22'050, 30'001, 16);
  add_ints("stereo16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 44'100, 100'003, 16);
  add_ints("stereo24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2, 96'000, 100'003, 24);
  add_ints("stereo16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44'100, 70'001, 16);
  add_ints("stereo24.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 2, 48'000, 100'003, 24);
  add_ints("mono24.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 1, 48'000, 20'011, 24);
  {
    auto x = stereo_sine(997.0, 1.2, 70'001, 48'000.0);  // over full scale, a subnormal, -0
    x[10] = 1e-40f;
    x[11] = -0.0f;
    files.push_back(file("float.wav"));
    sf_write_floats(files.back(), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 48'000, x);
  }
  files.push_back(file("sine.ogg"));
  sf_write_floats(files.back(), SF_FORMAT_OGG | SF_FORMAT_VORBIS, 2, 48'000,
                  stereo_sine(1'000.0, 0.7, 96'000, 48'000.0), 0.9);

  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    const audio_buffer ref = sf_read_planar(p);
    const decoded_track whole = decode_file(p);
    EXPECT_TRUE(bitwise_equal(whole.audio, ref));
    for (const std::size_t block : reader_block_sizes) {
      SCOPED_TRACE("block " + std::to_string(block));
      source_info info;
      EXPECT_TRUE(bitwise_equal(read_in_blocks(p, block, info), ref));
      EXPECT_EQ(info.frames, whole.info.frames);
      EXPECT_EQ(info.channels, whole.info.channels);
      EXPECT_EQ(info.encoding, whole.info.encoding);
      EXPECT_EQ(info.file_bytes, whole.info.file_bytes);
    }
  }
}

/// The input_error text decode_file gives for `p`.
std::string decode_error_text(const fs::path& p) {
  try {
    decode_file(p);
  } catch (const input_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << p;
  return {};
}

TEST_F(temp_dir_test, reader_reports_the_first_nan_in_the_block_holding_it) {
  const fs::path p = file("nan.wav");
  auto x = stereo_sine(440.0, 0.5, 48'000, 48'000.0);
  x[2 * 36'000 + 1] = std::numeric_limits<float>::quiet_NaN();  // channel 2 at 0.75 s
  x[2 * 40'000] = std::numeric_limits<float>::infinity();       // later: not the one reported
  sf_write_floats(p, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 48'000, x);
  const std::string want = decode_error_text(p);
  EXPECT_NE(want.find("NaN"), std::string::npos) << want;
  EXPECT_NE(want.find("channel 2 at 0:00.750 (frame 36000)"), std::string::npos) << want;
  for (const std::size_t block : reader_block_sizes) {
    SCOPED_TRACE("block " + std::to_string(block));
    audio_reader reader(p);
    audio_buffer buf(2, block);
    std::size_t delivered = 0;
    try {
      while (const std::size_t n = reader.read(buf.view())) delivered += n;
      ADD_FAILURE() << "no error";
    } catch (const input_error& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
    // Every block before the one holding frame 36000 was delivered, none after.
    EXPECT_EQ(delivered, 36'000 / block * block);
    EXPECT_THROW(reader.read(buf.view()), lathe::logic_error);  // spent
  }
}

TEST_F(temp_dir_test, reader_reports_a_truncated_stream_when_it_reaches_the_end) {
  // FLAC cut in half: the header's count is only known to be wrong once decoding stops.
  const fs::path p = file("cut.flac");
  constexpr std::size_t frames = 100'000;
  const auto ints = random_ints(2 * frames, 16);
  sf_write_ints(p, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2, 44'100, ints, 16);
  fs::resize_file(p, fs::file_size(p) / 2);
  const std::string want = decode_error_text(p);
  EXPECT_NE(want.find("of 100000 frames"), std::string::npos) << want;
  for (const std::size_t block : reader_block_sizes) {
    SCOPED_TRACE("block " + std::to_string(block));
    audio_reader reader(p);
    EXPECT_EQ(reader.info().frames, frames);
    audio_buffer buf(2, block);
    std::size_t delivered = 0, wrong = 0;
    try {
      while (const std::size_t n = reader.read(buf.view())) {
        for (std::size_t i = 0; i < n; ++i, ++delivered) {
          for (int c = 0; c < 2; ++c) {
            const float ref = static_cast<float>(ints[2 * delivered + static_cast<std::size_t>(c)]) / 32'768.0f;
            if (buf.channel(c)[i] != ref) ++wrong;
          }
        }
      }
      ADD_FAILURE() << "no error";
    } catch (const input_error& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
    // Every frame decoded before the end was handed over, exactly, whatever the block size.
    EXPECT_GT(delivered, 0u);
    EXPECT_NE(want.find("read " + std::to_string(delivered) + " of 100000"), std::string::npos) << want;
    EXPECT_EQ(wrong, 0u);
  }
  // A WAV whose header declares more than the file holds fails at the open, as decode_file does.
  const fs::path w = file("cut.wav");
  sf_write_ints(w, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 48'000, random_ints(2 * 48'000, 16), 16);
  fs::resize_file(w, 44 + 24'000 * 4);
  expect_input_error([&] { audio_reader r(w); }, w, {"truncated", "48000", "24000", "0:00.500"});
}

TEST_F(temp_dir_test, reader_is_move_only_and_moves_mid_stream) {
  static_assert(!std::is_copy_constructible_v<audio_reader> && !std::is_copy_assignable_v<audio_reader>);
  static_assert(std::is_nothrow_move_constructible_v<audio_reader> && std::is_nothrow_move_assignable_v<audio_reader>);
  const fs::path p = file("m.wav");
  const auto ints = random_ints(2 * 10'000, 24);
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2, 48'000, ints, 24);
  const audio_buffer ref = sf_read_planar(p);
  audio_buffer got(2, 10'000);
  audio_reader first(p);
  ASSERT_EQ(first.read(got.view(0, 3'001)), 3'001u);
  audio_reader second(std::move(first));
  ASSERT_EQ(second.read(got.view(3'001, 6'999)), 6'999u);
  audio_buffer more(2, 1);
  EXPECT_EQ(second.read(more.view()), 0u);
  EXPECT_TRUE(bitwise_equal(got, ref));
}

// ---- encoding ---------------------------------------------------------------------------------

struct enc_case {
  const char* name;
  container_format container;
  int bits;
  int channels;
  int expected_format;
  bool tagged = false;
};

class encode_round_trip : public temp_dir_test, public ::testing::WithParamInterface<enc_case> {};

TEST_P(encode_round_trip, integers_come_back_exactly) {
  const enc_case& c = GetParam();
  constexpr std::size_t frames = 70'003;  // several encoder chunks plus a remainder
  const auto ints = random_ints(frames * static_cast<std::size_t>(c.channels), c.bits, 3);
  pcm_frames pcm;
  pcm.channels = c.channels;
  pcm.sample_rate_hz = 96'000.0;
  pcm.bit_depth = c.bits;
  pcm.int_samples = ints;
  const fs::path dest = file(std::string("out.") + file_extension(c.container));
  write_audio_file(dest, c.container, pcm, {});
  SF_INFO info;
  const auto back = sf_read_ints(dest, c.bits, info);
  EXPECT_EQ(info.format, c.expected_format);
  EXPECT_EQ(info.samplerate, 96'000);
  EXPECT_EQ(info.channels, c.channels);
  ASSERT_EQ(back.size(), ints.size());
  EXPECT_TRUE(back == ints);
  EXPECT_EQ(listing(), std::vector<std::string>{dest.filename().string()});  // no temporary left
}

INSTANTIATE_TEST_SUITE_P(
    formats, encode_round_trip,
    ::testing::Values(enc_case{"wav16", container_format::wav, 16, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_16},
                      enc_case{"wav24", container_format::wav, 24, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_24},
                      enc_case{"wav24_mono", container_format::wav, 24, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_24},
                      enc_case{"flac16", container_format::flac, 16, 2, SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
                      enc_case{"flac24", container_format::flac, 24, 2, SF_FORMAT_FLAC | SF_FORMAT_PCM_24}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(temp_dir_test, float_wav_is_bit_exact) {
  auto x = stereo_sine(1'234.5, 0.9, 30'000, 44'100.0);
  x[0] = 1.5f;  // float masters may exceed full scale: no clipping
  x[1] = -2.0f;
  x[2] = 1e-42f;
  pcm_frames pcm;
  pcm.sample_rate_hz = 44'100.0;
  pcm.bit_depth = 32;
  pcm.float_samples = x;
  const fs::path dest = file("f.wav");
  write_audio_file(dest, container_format::wav, pcm, {});
  SF_INFO info{};
  SNDFILE* f = sf_open(dest.c_str(), SFM_READ, &info);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(info.format, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
  std::vector<float> back(x.size());
  ASSERT_EQ(sf_readf_float(f, back.data(), 30'000), 30'000);
  sf_close(f);
  EXPECT_EQ(std::memcmp(back.data(), x.data(), x.size() * sizeof(float)), 0);
}

TEST_F(temp_dir_test, flac_tags_read_back_with_libflac) {
  const auto ints = random_ints(2 * 1'000, 16);
  pcm_frames pcm;
  pcm.sample_rate_hz = 44'100.0;
  pcm.bit_depth = 16;
  pcm.int_samples = ints;
  track_tags tags;
  tags.title = "Título = \"quoted\"";
  tags.artist = "The Artist";
  tags.album = "";  // empty: no ALBUM comment at all
  tags.track_number = 7;
  tags.isrc = "GBAYE0601498";
  const fs::path dest = file("tagged.flac");
  write_audio_file(dest, container_format::flac, pcm, tags);

  FLAC__StreamMetadata* vc = nullptr;
  ASSERT_TRUE(FLAC__metadata_get_tags(dest.c_str(), &vc));
  std::map<std::string, std::string> got;
  for (FLAC__uint32 i = 0; i < vc->data.vorbis_comment.num_comments; ++i) {
    const auto& e = vc->data.vorbis_comment.comments[i];
    const std::string s(reinterpret_cast<const char*>(e.entry), e.length);
    got[s.substr(0, s.find('='))] = s.substr(s.find('=') + 1);
  }
  FLAC__metadata_object_delete(vc);
  const std::map<std::string, std::string> want = {
      {"TITLE", tags.title}, {"ARTIST", "The Artist"}, {"TRACKNUMBER", "7"}, {"ISRC", "GBAYE0601498"}};
  EXPECT_EQ(got, want);
  // Our own reader sees them too (ISRC through libFLAC, the rest through libsndfile).
  const source_info i = probe_file(dest);
  EXPECT_EQ(i.tags.isrc, "GBAYE0601498");
  EXPECT_EQ(i.tags.track_number, 7);
  EXPECT_EQ(i.tags.title, tags.title);
}

TEST_F(temp_dir_test, wav_info_tags_read_back_with_libsndfile) {
  const auto ints = random_ints(2 * 1'000, 24);
  pcm_frames pcm;
  pcm.bit_depth = 24;
  pcm.int_samples = ints;
  track_tags tags{"A Title", "An Artist", "An Album", "USRC17607839", 12};
  const fs::path dest = file("tagged.wav");
  write_audio_file(dest, container_format::wav, pcm, tags);
  SF_INFO info{};
  SNDFILE* f = sf_open(dest.c_str(), SFM_READ, &info);
  ASSERT_NE(f, nullptr);
  auto str = [&](int w) {
    const char* s = sf_get_string(f, w);
    return s ? std::string(s) : std::string("<none>");
  };
  EXPECT_EQ(str(SF_STR_TITLE), "A Title");
  EXPECT_EQ(str(SF_STR_ARTIST), "An Artist");
  EXPECT_EQ(str(SF_STR_ALBUM), "An Album");
  EXPECT_EQ(str(SF_STR_TRACKNUMBER), "12");
  sf_close(f);
  SF_INFO ri;
  EXPECT_TRUE(sf_read_ints(dest, 24, ri) == ints);  // the LIST chunk does not disturb the audio
}

TEST_F(temp_dir_test, write_creates_folders_and_replaces_existing_dest) {
  const auto first = random_ints(2 * 500, 16, 1), second = random_ints(2 * 800, 16, 2);
  pcm_frames pcm;
  pcm.bit_depth = 16;
  const fs::path dest = file("a/b/c/out.flac");
  pcm.int_samples = first;
  write_audio_file(dest, container_format::flac, pcm, {});
  pcm.int_samples = second;
  write_audio_file(dest, container_format::flac, pcm, {});
  SF_INFO info;
  EXPECT_TRUE(sf_read_ints(dest, 16, info) == second);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dest.parent_path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"out.flac"});
}

void expect_output_error(const std::function<void()>& fn, const fs::path& dest, const char* needle) {
  try {
    fn();
    ADD_FAILURE() << "no error writing " << dest;
  } catch (const output_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find(dest.string()), std::string::npos) << w;
    EXPECT_NE(w.find(needle), std::string::npos) << w;
  }
}

TEST_F(temp_dir_test, failure_parent_is_a_file_leaves_nothing) {
  std::ofstream(file("blocker")) << "a regular file where a folder should be";
  const auto ints = random_ints(2 * 100, 16);
  pcm_frames pcm;
  pcm.bit_depth = 16;
  pcm.int_samples = ints;
  const fs::path dest = file("blocker/sub/out.wav");
  expect_output_error([&] { write_audio_file(dest, container_format::wav, pcm, {}); }, dest,
                      "cannot create the folder");
  EXPECT_EQ(listing(), std::vector<std::string>{"blocker"});
}

TEST_F(temp_dir_test, failure_at_rename_removes_the_temporary) {
  // dest is an existing, non-empty folder: everything succeeds up to the rename, which fails
  // (also as root), so the cleanup of a fully written temporary is exercised.
  const fs::path dest = file("taken.flac");
  fs::create_directories(dest / "inside");
  const auto ints = random_ints(2 * 10'000, 24);
  pcm_frames pcm;
  pcm.bit_depth = 24;
  pcm.int_samples = ints;
  expect_output_error(
      [&] {
        write_audio_file(dest, container_format::flac, pcm, {"t", "a", "b", "", 1});
      },
      dest, "cannot move");
  EXPECT_EQ(listing(), std::vector<std::string>{"taken.flac"});
  EXPECT_TRUE(fs::is_directory(dest / "inside"));
}

TEST_F(temp_dir_test, flac_with_float_is_refused_before_writing) {
  const std::vector<float> x(200, 0.25f);
  pcm_frames pcm;
  pcm.bit_depth = 32;
  pcm.float_samples = x;
  const fs::path dest = file("f.flac");
  expect_output_error([&] { write_audio_file(dest, container_format::flac, pcm, {}); }, dest, "wav");
  EXPECT_TRUE(listing().empty());
}

TEST_F(temp_dir_test, concurrent_writes_to_distinct_dests) {
  constexpr int writers = 8;
  std::vector<std::vector<std::int32_t>> data;
  for (int i = 0; i < writers; ++i) data.push_back(random_ints(2 * 20'000, 16, static_cast<std::uint32_t>(100 + i)));
  auto name = [](int i) {
    std::string s = std::to_string(i);
    s += i % 2 ? ".wav" : ".flac";
    return s;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < writers; ++i) {
    threads.emplace_back([&, i] {
      pcm_frames pcm;
      pcm.bit_depth = 16;
      pcm.int_samples = data[static_cast<std::size_t>(i)];
      write_audio_file(file(name(i)), i % 2 ? container_format::wav : container_format::flac, pcm, {});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(listing().size(), static_cast<std::size_t>(writers));
  for (int i = 0; i < writers; ++i) {
    SF_INFO info;
    EXPECT_TRUE(sf_read_ints(file(name(i)), 16, info) == data[static_cast<std::size_t>(i)]);
  }
}

// ---- streaming writer -------------------------------------------------------------------------

std::vector<unsigned char> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// A float WAV's bytes with the PEAK chunk's timestamp (libsndfile writes time(NULL) there)
/// zeroed, so two writes of the same samples compare equal; other files unchanged.
std::vector<unsigned char> comparable_bytes(const fs::path& p) {
  std::vector<unsigned char> b = file_bytes(p);
  const std::size_t head = std::min<std::size_t>(b.size(), 512);
  for (std::size_t i = 12; i + 16 <= head; ++i) {
    if (std::memcmp(&b[i], "PEAK", 4) == 0) {
      std::fill_n(b.begin() + static_cast<std::ptrdiff_t>(i + 12), 4, 0);
      break;
    }
  }
  return b;
}

/// Feeds `x` to `w` in chunks of 1, 7, 4096 and 65537 frames in turn, then commits.
template <class T>
void write_in_chunks(audio_writer& w, const std::vector<T>& x, int channels) {
  const auto ch = static_cast<std::size_t>(channels);
  std::size_t pos = 0, turn = 0;
  while (pos < x.size()) {
    const std::size_t n = std::min(reader_block_sizes[turn++ % std::size(reader_block_sizes)] * ch, x.size() - pos);
    w.write(std::span<const T>(x.data() + pos, n));
    pos += n;
    EXPECT_EQ(w.frames_written(), pos / ch);
  }
  w.commit();
}

class writer_stream : public temp_dir_test, public ::testing::WithParamInterface<enc_case> {};

TEST_P(writer_stream, chunked_bytes_equal_one_shot_and_read_back) {
  const enc_case& c = GetParam();
  constexpr std::size_t frames = 100'003;  // every chunk size, several encoder chunks, a remainder
  constexpr int rate = 96'000;
  const track_tags tags = c.tagged ? track_tags{"A Title", "An Artist", "An Album", "USRC17607839", 12} : track_tags{};
  const auto ch = static_cast<std::size_t>(c.channels);
  const auto ints = random_ints(frames * ch, c.bits == 32 ? 24 : c.bits, 9);
  std::vector<float> floats(ints.size());
  for (std::size_t i = 0; i < ints.size(); ++i) floats[i] = static_cast<float>(ints[i]) * 1.5e-7f;  // past 1.0
  pcm_frames pcm;
  pcm.channels = c.channels;
  pcm.sample_rate_hz = rate;
  pcm.bit_depth = c.bits;
  if (c.bits == 32) {
    pcm.float_samples = floats;
  } else {
    pcm.int_samples = ints;
  }
  const std::string ext = file_extension(c.container);
  const fs::path one_shot = file("one." + ext), chunked = file("chunked." + ext);
  write_audio_file(one_shot, c.container, pcm, tags);
  {
    audio_writer w(chunked, c.container, c.channels, rate, c.bits, tags, frames);
    if (c.bits == 32) {
      write_in_chunks(w, floats, c.channels);
    } else {
      write_in_chunks(w, ints, c.channels);
    }
  }
  EXPECT_TRUE(comparable_bytes(one_shot) == comparable_bytes(chunked));
  if (c.container == container_format::wav && c.bits != 32) {
    // What the encoder was before it streamed: libsndfile given every frame in one call.
    const fs::path ref = file("ref.wav");
    sf_write_ints(ref, c.expected_format, c.channels, rate, ints, c.bits, tags);
    EXPECT_TRUE(file_bytes(one_shot) == file_bytes(ref));
  }
  EXPECT_EQ(std::memcmp(file_bytes(chunked).data(), c.container == container_format::wav ? "RIFF" : "fLaC", 4), 0);

  SF_INFO info{};
  SNDFILE* f = sf_open(chunked.c_str(), SFM_READ, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  EXPECT_EQ(info.format, c.expected_format);
  EXPECT_EQ(info.samplerate, rate);
  EXPECT_EQ(info.channels, c.channels);
  EXPECT_EQ(info.frames, static_cast<sf_count_t>(frames));
  const char* title = sf_get_string(f, SF_STR_TITLE);
  EXPECT_EQ(title ? std::string(title) : std::string(), tags.title);
  sf_close(f);
  if (c.bits == 32) {
    const audio_buffer back = sf_read_planar(chunked);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < frames; ++i)
      for (std::size_t k = 0; k < ch; ++k)
        differ += std::memcmp(&back.channel(static_cast<int>(k))[i], &floats[i * ch + k], sizeof(float)) != 0;
    EXPECT_EQ(differ, 0u);
  } else {
    SF_INFO ri;
    EXPECT_TRUE(sf_read_ints(chunked, c.bits, ri) == ints);
  }
  EXPECT_EQ(listing().size(), c.container == container_format::wav && c.bits != 32 ? 3u : 2u);  // no temporaries
}

INSTANTIATE_TEST_SUITE_P(
    formats, writer_stream,
    ::testing::Values(enc_case{"wav16", container_format::wav, 16, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_16},
                      enc_case{"wav24_tagged", container_format::wav, 24, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_24, true},
                      enc_case{"wav24_mono", container_format::wav, 24, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_24},
                      enc_case{"wav_float", container_format::wav, 32, 2, SF_FORMAT_WAV | SF_FORMAT_FLOAT},
                      enc_case{"wav_float_tagged", container_format::wav, 32, 2, SF_FORMAT_WAV | SF_FORMAT_FLOAT, true},
                      enc_case{"flac16", container_format::flac, 16, 2, SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
                      enc_case{"flac24_tagged", container_format::flac, 24, 2, SF_FORMAT_FLAC | SF_FORMAT_PCM_24, true},
                      enc_case{"flac16_mono", container_format::flac, 16, 1, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(temp_dir_test, writer_not_committed_leaves_dest_untouched) {
  const fs::path dest = file("out.flac");
  const auto first = random_ints(2 * 1'000, 16, 1), second = random_ints(2 * 1'000, 16, 2);
  pcm_frames pcm;
  pcm.bit_depth = 16;
  pcm.int_samples = first;
  write_audio_file(dest, container_format::flac, pcm, {});
  const auto before = file_bytes(dest);
  for (const container_format c : {container_format::flac, container_format::wav}) {
    const fs::path d = c == container_format::flac ? dest : file("out.wav");
    audio_writer w(d, c, 2, 48'000, 16, {}, 1'000);
    w.write(std::span<const std::int32_t>(second.data(), 2 * 400));
    EXPECT_EQ(listing().size(), 2u);  // dest (or nothing) and the temporary
  }                                   // destroyed mid-stream
  EXPECT_EQ(listing(), std::vector<std::string>{"out.flac"});
  EXPECT_TRUE(file_bytes(dest) == before);
}

TEST_F(temp_dir_test, writer_commit_checks_the_frame_count) {
  const fs::path dest = file("short.wav");
  const auto ints = random_ints(2 * 10, 24);
  {
    audio_writer w(dest, container_format::wav, 2, 48'000, 24, {}, 11);
    w.write(ints);
    expect_output_error([&] { w.commit(); }, dest, "only 10 of the 11 frames");
    expect_output_error([&] { w.commit(); }, dest, "cannot finish");  // spent
  }
  EXPECT_TRUE(listing().empty());
  audio_writer w(dest, container_format::wav, 2, 48'000, 24, {}, 9);
  EXPECT_THROW(w.write(ints), lathe::logic_error);                                           // past total_frames
  EXPECT_THROW(w.write(std::span<const std::int32_t>(ints.data(), 3)), lathe::logic_error);  // not whole frames
  const std::vector<std::int32_t> loud = {1 << 23, 0};
  EXPECT_THROW(w.write(loud), lathe::logic_error);  // outside 24 bits
  const std::vector<float> x(4, 0.5f);
  EXPECT_THROW(w.write(x), lathe::logic_error);  // float into a 24-bit file
}

TEST_F(temp_dir_test, writer_is_move_only_and_moves_mid_stream) {
  static_assert(!std::is_copy_constructible_v<audio_writer> && !std::is_copy_assignable_v<audio_writer>);
  static_assert(std::is_nothrow_move_constructible_v<audio_writer> && std::is_nothrow_move_assignable_v<audio_writer>);
  const auto ints = random_ints(2 * 50'000, 16, 4);
  pcm_frames pcm;
  pcm.bit_depth = 16;
  pcm.int_samples = ints;
  write_audio_file(file("one.flac"), container_format::flac, pcm, {});
  // The FLAC encoder writes through a pointer to the writer's sink: a move must keep it valid.
  audio_writer first(file("moved.flac"), container_format::flac, 2, 48'000, 16, {}, 50'000);
  first.write(std::span<const std::int32_t>(ints.data(), 2 * 20'000));
  audio_writer second(std::move(first));
  second.write(std::span<const std::int32_t>(ints.data() + 2 * 20'000, 2 * 30'000));
  second.commit();
  EXPECT_TRUE(file_bytes(file("one.flac")) == file_bytes(file("moved.flac")));
}

// ---- RF64 -------------------------------------------------------------------------------------

TEST(wav_rf64, threshold_arithmetic) {
  constexpr std::size_t hour_96k = 3'600 * 96'000;
  // 24-bit/96 kHz stereo is 576 kB/s: 1 h is 2.07 GB, 2 h 4.15 GB (under 2^32 = 4.29 GB), 3 h 6.22 GB.
  EXPECT_FALSE(wav_needs_rf64(1 * hour_96k, 2, 24));
  EXPECT_FALSE(wav_needs_rf64(2 * hour_96k, 2, 24));
  EXPECT_TRUE(wav_needs_rf64(3 * hour_96k, 2, 24));
  // 32-bit float at 96 kHz stereo: 2 h is 5.53 GB. 16-bit/44.1 kHz stereo passes 2^32 bytes after 6.76 h.
  EXPECT_TRUE(wav_needs_rf64(2 * hour_96k, 2, 32));
  EXPECT_FALSE(wav_needs_rf64(6 * 3'600 * 44'100, 2, 16));
  EXPECT_TRUE(wav_needs_rf64(7 * 3'600 * 44'100, 2, 16));
  EXPECT_FALSE(wav_needs_rf64(0, 1, 16));
  EXPECT_TRUE(wav_needs_rf64(std::numeric_limits<std::size_t>::max(), 2, 32));  // no overflow
}

TEST_F(temp_dir_test, rf64_threshold_is_safe_and_tight) {
  // The largest frame count kept as RIFF, found by bisection, for 24-bit stereo with tags.
  const track_tags tags{"A fairly long title for a track", "An Artist", "An Album", "", 12};
  std::size_t lo = 0, hi = std::size_t{1} << 31;  // lo fits, hi does not
  ASSERT_TRUE(wav_needs_rf64(hi, 2, 24, tags));
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (wav_needs_rf64(mid, 2, 24, tags) ? hi : lo) = mid;
  }
  // Its real header, measured on a small file with the same tags: the file minus its samples.
  const fs::path p = file("small.wav");
  const auto ints = random_ints(2 * 100, 24);
  sf_write_ints(p, SF_FORMAT_WAV | SF_FORMAT_PCM_24, 2, 96'000, ints, 24, tags);
  const std::uint64_t header = fs::file_size(p) - 100 * 6;
  const std::uint64_t data = static_cast<std::uint64_t>(lo) * 6;
  EXPECT_LE(data + header - 8, riff_max_bytes);  // the RIFF size field holds the file
  EXPECT_LE(data, riff_max_bytes);               // and the data size field the samples
  EXPECT_GE(data, riff_max_bytes - 8'192);       // and little capacity is given away
  // A longer tag moves the threshold down by about its size.
  track_tags longer = tags;
  longer.title.append(1'000, 'x');
  EXPECT_TRUE(wav_needs_rf64(lo, 2, 24, longer));
}

TEST_F(temp_dir_test, rf64_written_when_forced_reads_back_identically) {
  // A RIFF capacity of 1 byte sends even a small file down the RF64 path.
  constexpr std::size_t frames = 70'001;
  const track_tags tags{"A Title", "An Artist", "An Album", "", 12};
  const auto ints = random_ints(frames * 2, 24, 5);
  std::vector<float> floats(ints.size());
  for (std::size_t i = 0; i < ints.size(); ++i) floats[i] = static_cast<float>(ints[i]) * 1.5e-7f;
  for (const int bits : {24, 32}) {
    SCOPED_TRACE(bits);
    const fs::path dest = file("big" + std::to_string(bits) + ".wav");
    ASSERT_TRUE(wav_needs_rf64(frames, 2, bits, tags, 1));
    audio_writer w(dest, container_format::wav, 2, 96'000, bits, tags, frames, 1);
    if (bits == 32) {
      write_in_chunks(w, floats, 2);
    } else {
      write_in_chunks(w, ints, 2);
    }
    EXPECT_EQ(std::memcmp(file_bytes(dest).data(), "RF64", 4), 0);
    SF_INFO info{};
    SNDFILE* f = sf_open(dest.c_str(), SFM_READ, &info);
    ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
    EXPECT_EQ(info.format, SF_FORMAT_RF64 | (bits == 32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_24));
    EXPECT_EQ(info.frames, static_cast<sf_count_t>(frames));
    EXPECT_EQ(info.samplerate, 96'000);
    const char* title = sf_get_string(f, SF_STR_TITLE);
    const char* track = sf_get_string(f, SF_STR_TRACKNUMBER);
    EXPECT_EQ(title ? std::string(title) : "", "A Title");  // the LIST/INFO chunk survives in RF64
    EXPECT_EQ(track ? std::string(track) : "", "12");
    sf_close(f);
    if (bits == 24) {
      SF_INFO ri;
      EXPECT_TRUE(sf_read_ints(dest, 24, ri) == ints);
    } else {
      const audio_buffer back = sf_read_planar(dest);
      ASSERT_EQ(back.frames(), frames);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < frames; ++i)
        for (int c = 0; c < 2; ++c)
          differ += std::memcmp(&back.channel(c)[i], &floats[2 * i + static_cast<std::size_t>(c)], 4) != 0;
      EXPECT_EQ(differ, 0u);
    }
    EXPECT_EQ(probe_file(dest).container, "rf64");  // and lathe reads it as such
  }
  EXPECT_EQ(listing().size(), 2u);
}

TEST(container_names, parse_and_print) {
  container_format c{};
  EXPECT_TRUE(parse_container("wav", c));
  EXPECT_EQ(c, container_format::wav);
  EXPECT_TRUE(parse_container("flac", c));
  EXPECT_EQ(c, container_format::flac);
  EXPECT_FALSE(parse_container("mp3", c));
  EXPECT_STREQ(to_string(container_format::wav), "wav");
  EXPECT_STREQ(file_extension(container_format::flac), "flac");
}

}  // namespace
