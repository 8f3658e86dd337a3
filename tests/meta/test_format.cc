// Volume settings: the encryption fields survive JSON (and settings written before
// encryption existed read as unencrypted), and a forced re-format cannot change them.
#include <gtest/gtest.h>

#include "kv/engine.h"
#include "meta/meta.h"

namespace sluice::meta {
namespace {

Format encrypted_format() {
  Format f;
  f.name = "vol";
  f.storage = "mem://x";
  f.encryption = "aes256gcm-rsa";
  f.encryption_key = "d3JhcHBlZA==";
  f.encryption_key_fingerprint = "sha256:00ff";
  return f;
}

TEST(FormatJson, EncryptionFieldsRoundTrip) {
  auto back = Format::from_json(encrypted_format().to_json());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->encryption, "aes256gcm-rsa");
  EXPECT_EQ(back->encryption_key, "d3JhcHBlZA==");
  EXPECT_EQ(back->encryption_key_fingerprint, "sha256:00ff");
}

TEST(FormatJson, UnencryptedSettingsHaveNoEncryptionFields) {
  Format f;
  f.name = "vol";
  std::string json = f.to_json();
  EXPECT_EQ(json.find("encryption"), std::string::npos) << json;
  auto old = Format::from_json(
      R"({"name":"vol","uuid":"u","storage":"file:///x","block_size":4194304})");
  ASSERT_TRUE(old.has_value());
  EXPECT_TRUE(old->encryption.empty());
}

TEST(FormatForce, EncryptionCannotChange) {
  auto engine = kv::open_engine("mem://test-format-encryption", true);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  Format plain = encrypted_format();
  plain.encryption = plain.encryption_key = plain.encryption_key_fingerprint = "";
  ASSERT_TRUE(Meta::format(**engine, plain, false).ok());
  Status added = Meta::format(**engine, encrypted_format(), true);
  EXPECT_EQ(added.code(), Code::kInvalid);
  EXPECT_NE(added.message().find("encryption of a formatted volume cannot change"),
            std::string::npos)
      << added.ToString();

  auto engine2 = kv::open_engine("mem://test-format-encryption-2", true);
  ASSERT_TRUE(engine2.ok());
  ASSERT_TRUE(Meta::format(**engine2, encrypted_format(), false).ok());
  Format rekeyed = encrypted_format();
  rekeyed.encryption_key = "b3RoZXI=";
  EXPECT_EQ(Meta::format(**engine2, rekeyed, true).code(), Code::kInvalid);
  EXPECT_EQ(Meta::format(**engine2, plain, true).code(), Code::kInvalid);
  Format same = encrypted_format();
  same.trash_days = 9;
  EXPECT_TRUE(Meta::format(**engine2, same, true).ok());
  auto m = Meta::open(*engine2);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->format().encryption_key, "d3JhcHBlZA==");
  EXPECT_EQ((*m)->format().trash_days, 9u);
}

}  // namespace
}  // namespace sluice::meta
