// audio_spill: every kind returns the appended samples bit for bit at any offset, and a file
// spill keeps neither memory nor a name.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "lathe/spill.hpp"
#include "support/signals.hpp"

namespace lathe {
namespace {

bool same_frames(const audio_buffer& ref, std::size_t first, const audio_buffer& got) {
  for (int c = 0; c < ref.channels(); ++c)
    if (std::memcmp(ref.channel(c) + first, got.channel(c), got.frames() * sizeof(float)) != 0) return false;
  return true;
}

std::filesystem::path fresh_folder(const char* name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "lathe-spill-test" / name;
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(AudioSpill, EveryKindReadsBackWhatWasAppendedAtAnyOffset) {
  const audio_buffer x = test::white_noise(-10.0, 1.0, 48'000.0, 2, 3);  // 48'000 frames
  const std::filesystem::path dir = fresh_folder("kinds");
  audio_spill memory(2), file(2, dir);
  // Appends in uneven blocks that straddle the file's conversion block.
  std::mt19937 rng(5);
  std::uniform_int_distribution<std::size_t> pick(1, 3 * spill_block_frames);
  for (std::size_t pos = 0; pos < x.frames();) {
    const std::size_t n = std::min(pick(rng), x.frames() - pos);
    memory.append(x.view(pos, n));
    file.append(x.view(pos, n));
    pos += n;
  }
  const audio_spill borrowed = audio_spill::borrow(x);
  EXPECT_TRUE(file.in_file());
  for (const audio_spill* s : std::vector<const audio_spill*>{&memory, &file, &borrowed}) {
    ASSERT_EQ(s->frames(), x.frames());
    for (const auto& [first, n] : std::vector<std::pair<std::size_t, std::size_t>>{
             {0, x.frames()}, {0, 1}, {x.frames() - 1, 1}, {8'191, 8'194}, {12'345, 20'000}, {x.frames(), 0}}) {
      audio_buffer got(2, n);
      s->read(first, got.view());
      EXPECT_TRUE(same_frames(x, first, got)) << "first " << first << " frames " << n;
    }
  }
  // Reading past the end is refused, as is appending to a borrowed spill.
  audio_buffer one(2, 1);
  EXPECT_THROW(file.read(x.frames(), one.view()), logic_error);
  audio_spill borrowed_again = audio_spill::borrow(x);
  EXPECT_THROW(borrowed_again.append(x.view(0, 1)), logic_error);
  // A file spill leaves no name in its folder and holds only its conversion blocks.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_LE(file.memory_bytes(), 2 * spill_block_frames * 2 * sizeof(float));
  EXPECT_GE(memory.memory_bytes(), x.frames() * 2 * sizeof(float));
}

TEST(AudioSpill, AMemorySpillReadsAcrossItsChunksBitForBit) {
  // 1.5 M frames span chunks of every size, up to several of the largest; reads start and end
  // on either side of each chunk edge (the chunks double from 16 Ki frames up to 512 Ki).
  const audio_buffer x = test::white_noise(-10.0, 31.25, 48'000.0, 1, 11);
  audio_spill memory(1);
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> pick(1, 200'000);
  for (std::size_t pos = 0; pos < x.frames();) {
    const std::size_t n = std::min(pick(rng), x.frames() - pos);
    memory.append(x.view(pos, n));
    pos += n;
  }
  ASSERT_EQ(memory.frames(), x.frames());
  std::vector<std::pair<std::size_t, std::size_t>> reads{{0, x.frames()}};
  for (std::size_t edge = std::size_t{1} << 14, size = edge; edge < x.frames();
       size = std::min(2 * size, std::size_t{1} << 19), edge += size)
    for (const std::size_t first : {edge - 1, edge, edge - 300})
      reads.emplace_back(first, std::min<std::size_t>(700'000, x.frames() - first));
  for (const auto& [first, n] : reads) {
    audio_buffer got(1, n);
    memory.read(first, got.view());
    EXPECT_TRUE(same_frames(x, first, got)) << "first " << first << " frames " << n;
  }
  // What it holds is the audio and at most one chunk's spare room.
  EXPECT_GE(memory.memory_bytes(), x.frames() * sizeof(float));
  EXPECT_LE(memory.memory_bytes(), (x.frames() + (std::size_t{1} << 19)) * sizeof(float));
}

TEST(AudioSpill, ReadsInterleaveWithAppends) {
  const audio_buffer x = test::white_noise(-10.0, 0.5, 48'000.0, 1, 9);
  audio_spill file(1, fresh_folder("interleaved"));
  for (std::size_t pos = 0; pos < x.frames(); pos += 1'000) {
    const std::size_t n = std::min<std::size_t>(1'000, x.frames() - pos);
    file.append(x.view(pos, n));
    audio_buffer got(1, pos + n);
    file.read(0, got.view());
    ASSERT_TRUE(same_frames(x, 0, got)) << "after " << pos + n << " frames";
  }
}

TEST(AudioSpill, AnUncreatableFolderIsAnOutputErrorNamingIt) {
  const std::filesystem::path dir = fresh_folder("blocked");
  std::filesystem::create_directories(dir.parent_path());
  {
    std::FILE* f = std::fopen(dir.c_str(), "w");
    std::fclose(f);
  }  // a file where the folder should be
  try {
    audio_spill s(2, dir / "sub");
    FAIL() << "no error";
  } catch (const output_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir);
}

}  // namespace
}  // namespace lathe
