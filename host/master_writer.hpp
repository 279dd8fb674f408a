#pragma once
// The end of a streamed render: each delivered block goes to the master's file and to the
// meters of the master's tonal balance and translation, so nothing waits for the whole track.
#include <filesystem>
#include <optional>

#include "lathe/audio_io.hpp"
#include "lathe/master.hpp"
#include "lathe/mix_notes.hpp"
#include "lathe/tonal.hpp"

namespace lathe {

/// A master_sink that writes each delivery attempt to a temporary beside `dest` (a new attempt
/// discards the previous one) and measures it on the way. commit() renames the last attempt
/// over dest; without commit() nothing is left under dest's name.
class master_writer final : public master_sink {
 public:
  master_writer(std::filesystem::path dest, container_format container, const track_tags& tags);

  void begin(double sample_rate_hz, int channels, int bit_depth, std::size_t frames) override;
  void add(const_block_view delivered, std::span<const std::int32_t> ints, std::span<const float> floats) override;

  /// Finishes and renames the file (output_error on failure), then the master's tonal balance
  /// and its translation against `target` (may be null).
  struct measured {
    tonal_analysis tonal;
    translation_check translation;
  };
  measured commit(const target_curve* target);

 private:
  std::filesystem::path dest_;
  container_format container_;
  track_tags tags_;
  std::optional<audio_writer> writer_;
  std::optional<tonal_analyzer> tonal_;
  std::optional<translation_meter> translation_;
};

}  // namespace lathe
