// SPDX-License-Identifier: LGPL-2.1-or-later
// Structure-aware mutations for fuzz-png. Random bytes almost never get past a chunk CRC or the
// zlib stream of IDAT, so most mutations here repair them: byte-level changes with every CRC
// recomputed, IHDR fields set to edge values, and changes to the inflated (filtered) scanlines,
// re-deflated into one IDAT. A share of plain mutations keeps testing the CRC checks themselves.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

struct Chunk {
  std::string type;
  std::vector<uint8_t> body;
};

// The chunks of a PNG whose framing is intact; false when it is not.
bool split(const uint8_t* data, size_t size, std::vector<Chunk>& chunks) {
  if (size < 8 || std::memcmp(data, kSignature, 8) != 0) return false;
  size_t pos = 8;
  while (pos + 12 <= size) {
    const uint32_t len = be32(data + pos);
    if (len > size - pos - 12) return false;
    chunks.push_back({std::string(reinterpret_cast<const char*>(data + pos + 4), 4),
                      std::vector<uint8_t>(data + pos + 8, data + pos + 8 + len)});
    pos += 12 + len;
  }
  return !chunks.empty();
}

std::vector<uint8_t> join(const std::vector<Chunk>& chunks) {
  std::vector<uint8_t> out(kSignature, kSignature + 8);
  for (const Chunk& c : chunks) {
    uint8_t head[8];
    put_be32(head, uint32_t(c.body.size()));
    std::memcpy(head + 4, c.type.data(), 4);
    out.insert(out.end(), head, head + 8);
    out.insert(out.end(), c.body.begin(), c.body.end());
    uLong crc = crc32(0, reinterpret_cast<const Bytef*>(c.type.data()), 4);
    crc = crc32(crc, c.body.data(), uInt(c.body.size()));
    uint8_t tail[4];
    put_be32(tail, uint32_t(crc));
    out.insert(out.end(), tail, tail + 4);
  }
  return out;
}

// Recomputes the CRC of every chunk whose length fits the data.
void fix_crcs(uint8_t* data, size_t size) {
  if (size < 8 || std::memcmp(data, kSignature, 8) != 0) return;
  size_t pos = 8;
  while (pos + 12 <= size) {
    const uint32_t len = be32(data + pos);
    if (len > size - pos - 12) return;
    put_be32(data + pos + 8 + len, uint32_t(crc32(0, data + pos + 4, len + 4)));
    pos += 12 + len;
  }
}

bool inflate_all(const std::vector<uint8_t>& in, std::vector<uint8_t>& out) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return false;
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = uInt(in.size());
  int rc = Z_OK;
  uint8_t buf[16384];
  while (rc == Z_OK && out.size() < (4u << 20)) {
    z.next_out = buf;
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.insert(out.end(), buf, buf + (sizeof buf - z.avail_out));
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  return !out.empty();
}

size_t emit(const std::vector<uint8_t>& png, uint8_t* data, size_t max_size) {
  if (png.size() > max_size) return 0;
  std::memcpy(data, png.data(), png.size());
  return png.size();
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  std::vector<Chunk> chunks;
  const unsigned action = rng() % 8;
  if (action >= 2 && action <= 4 && split(data, size, chunks)) {
    if (action == 2) {
      // IHDR fields at their edges: sizes, bit depth / colour type pairs, interlace.
      for (Chunk& c : chunks) {
        if (c.type != "IHDR" || c.body.size() != 13) continue;
        static const uint32_t sizes[] = {0, 1, 2, 3, 7, 8, 9, 255, 256, 4097, 65535, 65536, 0x7fffffff, 0x80000000u,
                                         0xffffffffu};
        static const uint8_t depths[] = {1, 2, 4, 8, 16, 0, 3, 32};
        static const uint8_t colours[] = {0, 2, 3, 4, 6, 1, 5, 7};
        switch (rng() % 5) {
          case 0: put_be32(c.body.data(), sizes[rng() % 15]); break;
          case 1: put_be32(c.body.data() + 4, sizes[rng() % 15]); break;
          case 2: c.body[8] = depths[rng() % 8]; break;
          case 3: c.body[9] = colours[rng() % 8]; break;
          default: c.body[12] = uint8_t(rng() % 3); break;
        }
      }
      if (size_t n = emit(join(chunks), data, max_size)) return n;
    } else {
      // The inflated scanlines (filter bytes and samples), changed, re-deflated into one IDAT.
      std::vector<uint8_t> z, raw;
      size_t first = chunks.size();
      for (size_t i = 0; i < chunks.size(); ++i) {
        if (chunks[i].type != "IDAT") continue;
        if (first == chunks.size()) first = i;
        z.insert(z.end(), chunks[i].body.begin(), chunks[i].body.end());
      }
      if (first < chunks.size() && inflate_all(z, raw)) {
        const size_t cap = raw.size() + 64;
        raw.resize(cap);
        raw.resize(LLVMFuzzerMutate(raw.data(), cap - 64, cap));
        if (action == 4 && !raw.empty()) {
          // Row filter bytes are the interesting ones: set a few to 0..4 (or out of range).
          for (int k = 0; k < 4; ++k) raw[rng() % raw.size()] = uint8_t(rng() % 6);
        }
        uLongf zn = compressBound(uLong(raw.size()));
        std::vector<uint8_t> packed(zn);
        if (compress2(packed.data(), &zn, raw.data(), uLong(raw.size()), 1) == Z_OK) {
          packed.resize(zn);
          std::vector<Chunk> out;
          for (size_t i = 0; i < chunks.size(); ++i) {
            if (chunks[i].type != "IDAT") out.push_back(chunks[i]);
            else if (i == first) out.push_back({"IDAT", packed});
          }
          if (size_t n = emit(join(out), data, max_size)) return n;
        }
      }
    }
  }
  size = LLVMFuzzerMutate(data, size, max_size);
  if (action != 7) fix_crcs(data, size);  // one in eight keeps its broken CRCs
  return size;
}
