// The safetensors header parser: valid headers give sorted tensor file ranges; every
// kind of malformed header is kInvalid (never a crash or a range outside the file); the
// sniff accepts only plausible header lengths.
#include "vfs/safetensors.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::vfs {
namespace {

// The 8-byte little-endian length prefix of a header of n bytes.
std::string prefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

Code code_of(std::string_view header, uint64_t file_size) {
  return parse_safetensors_header(header, file_size).status().code();
}

TEST(Safetensors, ValidHeaderGivesSortedFileRanges) {
  // JSON order (alphabetical here) differs from data order; zero-size tensors vanish.
  const std::string h =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[40,64]},)"
      R"("b":{"dtype":"BF16","shape":[20],"data_offsets":[0,40]},)"
      R"("c":{"dtype":"I8","shape":[0],"data_offsets":[64,64]},)"
      R"("d":{"dtype":"F8_E4M3","shape":[1,1,36],"data_offsets":[64,100]}})";
  const uint64_t size = 8 + h.size() + 100;
  auto r = parse_safetensors_header(h, size);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const uint64_t d = 8 + h.size();
  EXPECT_EQ(r->data_start, d);
  ASSERT_EQ(r->tensors.size(), 3u);
  EXPECT_EQ(r->tensors[0], (TensorRange{d, d + 40}));
  EXPECT_EQ(r->tensors[1], (TensorRange{d + 40, d + 64}));
  EXPECT_EQ(r->tensors[2], (TensorRange{d + 64, d + 100}));
  EXPECT_EQ(r->find(d - 1), nullptr);  // inside the header
  EXPECT_EQ(r->find(d), &r->tensors[0]);
  EXPECT_EQ(r->find(d + 39), &r->tensors[0]);
  EXPECT_EQ(r->find(d + 40), &r->tensors[1]);
  EXPECT_EQ(r->find(d + 99), &r->tensors[2]);
  EXPECT_EQ(r->find(d + 100), nullptr);
}

TEST(Safetensors, UnknownDtypeSkipsTheSizeCheckOnly) {
  const std::string h = R"({"x":{"dtype":"F4","shape":[16],"data_offsets":[0,8]}})";
  auto r = parse_safetensors_header(h, 8 + h.size() + 8);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->tensors.size(), 1u);
}

TEST(Safetensors, MalformedHeadersAreRejected) {
  const auto t = [](const std::string& entry) { return R"({"t":)" + entry + "}"; };
  const uint64_t big = 1 << 20;
  // Not JSON, truncated JSON, not an object.
  EXPECT_EQ(code_of("{\"t\":{\"dtype\":\"F32\"", big), Code::kInvalid);
  EXPECT_EQ(code_of("not json", big), Code::kInvalid);
  EXPECT_EQ(code_of("", big), Code::kInvalid);
  EXPECT_EQ(code_of("[1,2]", big), Code::kInvalid);
  // Non-object entries and metadata.
  EXPECT_EQ(code_of(t("5"), big), Code::kInvalid);
  EXPECT_EQ(code_of(t("[0,4]"), big), Code::kInvalid);
  EXPECT_EQ(code_of(R"({"__metadata__":"x"})", big), Code::kInvalid);
  // Missing or mistyped fields.
  EXPECT_EQ(code_of(t(R"({"shape":[1],"data_offsets":[0,4]})"), big), Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","data_offsets":[0,4]})"), big), Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1]})"), big), Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"), big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1],"data_offsets":["0","4"]})"), big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), big),
            Code::kInvalid);
  // Offsets reversed, or past the end of the file.
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})"), big),
            Code::kInvalid);
  const std::string past = t(R"({"dtype":"U8","shape":[16],"data_offsets":[0,16]})");
  EXPECT_EQ(code_of(past, 8 + past.size() + 15), Code::kInvalid);
  EXPECT_TRUE(parse_safetensors_header(past, 8 + past.size() + 16).ok());
  EXPECT_EQ(code_of(t(R"({"dtype":"U8","shape":[1],"data_offsets":[0,18446744073709551615]})"),
                    big),
            Code::kInvalid);
  // Shape and offsets that disagree, and shapes whose element count overflows.
  EXPECT_EQ(code_of(t(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F64","shape":[4294967296,4294967296,16],)"
                      R"("data_offsets":[0,0]})"),
                    big),
            Code::kInvalid);
  EXPECT_EQ(code_of(t(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]})"),
                    big),
            Code::kInvalid);
  // Overlapping tensors.
  EXPECT_EQ(code_of(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
                    big),
            Code::kInvalid);
  // A header longer than the file, or than the format allows.
  EXPECT_EQ(code_of("{}", 9), Code::kInvalid);
  EXPECT_EQ(code_of(std::string(kMaxSafetensorsHeader + 1, ' '), UINT64_MAX), Code::kInvalid);
}

TEST(Safetensors, DeeplyNestedJsonDoesNotCrash) {
  const std::string deep = R"({"t":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(code_of(deep, 1 << 30), Code::kInvalid);
}

TEST(Safetensors, SniffAcceptsOnlyPlausibleLengths) {
  EXPECT_EQ(safetensors_header_len(prefix(100) + "{", 1000), 100u);
  EXPECT_EQ(safetensors_header_len(prefix(992) + "{", 1000), 992u);
  EXPECT_EQ(safetensors_header_len(prefix(993) + "{", 1000), std::nullopt);  // past the end
  EXPECT_EQ(safetensors_header_len(prefix(100) + "[", 1000), std::nullopt);  // not an object
  EXPECT_EQ(safetensors_header_len(prefix(100), 1000), std::nullopt);        // too short
  EXPECT_EQ(safetensors_header_len(prefix(0) + "{", 1000), std::nullopt);
  EXPECT_EQ(safetensors_header_len(prefix(UINT64_MAX) + "{", UINT64_MAX), std::nullopt);
  EXPECT_EQ(safetensors_header_len(prefix(kMaxSafetensorsHeader + 1) + "{", UINT64_MAX),
            std::nullopt);
  EXPECT_EQ(safetensors_header_len(prefix(5000) + "{", 1 << 20, 4096), std::nullopt);  // cap
  EXPECT_EQ(safetensors_header_len(prefix(100) + "{", 4), std::nullopt);
}

}  // namespace
}  // namespace sluice::vfs
