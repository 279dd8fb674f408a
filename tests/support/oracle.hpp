#pragma once
// libebur128 as an independent meter for files lathe wrote.
#include <ebur128.h>
#include <sndfile.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace lathe::test {

struct oracle_reading {
  double integrated_lufs = 0.0;
  double loudness_range_lu = 0.0;
  double true_peak_dbtp = 0.0;
  double sample_rate_hz = 0.0;
  int channels = 0;
  int format = 0;  ///< libsndfile format word
  sf_count_t frames = 0;
};

/// Measures a file with libebur128 (integrated, LRA, true peak over channels).
inline oracle_reading ebur128_measure_file(const std::filesystem::path& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (f == nullptr) throw std::runtime_error("cannot open " + path.string() + ": " + sf_strerror(nullptr));
  ebur128_state* st = ebur128_init(static_cast<unsigned>(info.channels), static_cast<unsigned long>(info.samplerate),
                                   EBUR128_MODE_I | EBUR128_MODE_LRA | EBUR128_MODE_TRUE_PEAK);
  std::vector<double> buf(static_cast<std::size_t>(4096 * info.channels));
  sf_count_t n = 0;
  while ((n = sf_readf_double(f, buf.data(), 4096)) > 0)
    ebur128_add_frames_double(st, buf.data(), static_cast<std::size_t>(n));
  sf_close(f);
  oracle_reading r;
  ebur128_loudness_global(st, &r.integrated_lufs);
  ebur128_loudness_range(st, &r.loudness_range_lu);
  double tp = 0.0;
  for (int c = 0; c < info.channels; ++c) {
    double v = 0.0;
    ebur128_true_peak(st, static_cast<unsigned>(c), &v);
    tp = std::max(tp, v);
  }
  r.true_peak_dbtp = 20.0 * std::log10(tp);
  r.sample_rate_hz = info.samplerate;
  r.channels = info.channels;
  r.format = info.format;
  r.frames = info.frames;
  ebur128_destroy(&st);
  return r;
}

}  // namespace lathe::test
