// Encryption at rest through the real binary: a volume formatted with an RSA key
// (passphrase-protected PEM made by `openssl genpkey`) stores only ciphertext, reads
// back exactly across remounts, and refuses to mount without its key, with another
// key, or with a wrong passphrase — each a one-line error before anything is mounted.
// Encryption cannot be added to, or changed on, an existing volume.
#include <cstdlib>
#include <random>

#include "mount_fixture.h"

namespace sluice::test {
namespace {

constexpr const char* kPassphrase = "correct horse battery";
constexpr const char* kMarker = "PLAINTEXT-MARKER-7f3a";

class Encryption : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (HasFatalFailure()) return;
    meta_url_ = "sqlite3://" + path("meta.db");
    mnt_ = path("mnt");
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    key_ = path("key.pem");
    other_key_ = path("other.pem");
    GenKey(key_, kPassphrase);
    GenKey(other_key_, "");
  }

  void TearDown() override {
    if (!mnt_.empty() && is_mounted(mnt_)) {
      CliResult r = cli({"umount", mnt_});
      EXPECT_EQ(r.code, 0) << r.err;
      if (is_mounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    }
    TempDirTest::TearDown();
  }

  void GenKey(const std::string& out, const std::string& passphrase) {
    std::vector<std::string> args = {"genpkey", "-algorithm", "RSA", "-pkeyopt",
                                     "rsa_keygen_bits:2048", "-out", out};
    if (!passphrase.empty()) {
      args.insert(args.end(), {"-aes-256-cbc", "-pass", "pass:" + passphrase});
    }
    CliResult r = run_program("openssl", args, dir_);
    ASSERT_EQ(r.code, 0) << r.err;
  }

  // The CLI with SLUICE_RSA_PASSPHRASE set to passphrase (unset when null).
  CliResult cli_pass(const std::vector<std::string>& args, const char* passphrase) {
    if (passphrase != nullptr) {
      setenv("SLUICE_RSA_PASSPHRASE", passphrase, 1);
    } else {
      unsetenv("SLUICE_RSA_PASSPHRASE");
    }
    CliResult r = cli(args);
    unsetenv("SLUICE_RSA_PASSPHRASE");
    return r;
  }

  CliResult FormatEncrypted(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"format", meta_url_, "vol", "--storage",
                                     "file://" + path("objects"), "--encrypt-rsa-key", key_};
    args.insert(args.end(), extra.begin(), extra.end());
    return cli_pass(args, kPassphrase);
  }

  void MountWithKey() {
    CliResult r = cli_pass({"mount", meta_url_, mnt_, "--log", path("sluice.log"),
                            "--encrypt-rsa-key", key_},
                           kPassphrase);
    ASSERT_EQ(r.code, 0) << r.err << "\nlog:\n" << read_file(path("sluice.log"));
    ASSERT_TRUE(is_mounted(mnt_));
  }

  void Unmount() {
    CliResult r = cli({"umount", mnt_});
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_FALSE(is_mounted(mnt_));
  }

  // A failed mount: one line containing `expected`, and nothing mounted.
  void ExpectMountFails(const std::vector<std::string>& extra, const char* passphrase,
                        const std::string& expected) {
    std::vector<std::string> args = {"mount", meta_url_, mnt_, "--log", path("sluice.log")};
    args.insert(args.end(), extra.begin(), extra.end());
    expect_one_line_error(cli_pass(args, passphrase), expected);
    EXPECT_FALSE(is_mounted(mnt_));
  }

  std::string meta_url_, mnt_, key_, other_key_;
};

// Data with the marker every few hundred bytes, so that any plaintext run in an object
// would contain it.
std::string marked_text(size_t n) {
  std::string s;
  for (size_t i = 0; s.size() < n; i++) s += std::string(kMarker) + " line " + std::to_string(i) + "\n";
  s.resize(n);
  return s;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_F(Encryption, RoundTripsAndStoresOnlyCiphertext) {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/fuse";
  CliResult f = FormatEncrypted({"--compression", "zstd"});
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.out.find("encryption aes256gcm-rsa"), std::string::npos) << f.out;
  MountWithKey();
  const std::string text = marked_text((9 << 20) + 12345);  // 3 blocks, compressible
  const std::string noise = random_bytes((5 << 20) + 1, 1);
  const std::string tiny = std::string(kMarker) + " tiny";
  write_file(mnt_ + "/text", text);
  write_file(mnt_ + "/noise", noise);
  write_file(mnt_ + "/tiny", tiny);
  EXPECT_TRUE(read_file(mnt_ + "/text") == text);
  EXPECT_TRUE(read_file(mnt_ + "/noise") == noise);
  EXPECT_EQ(read_file(mnt_ + "/tiny"), tiny);
  CliResult info = cli({"info", mnt_ + "/text"});
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("encryption: aes256gcm-rsa (RSA key sha256:"), std::string::npos)
      << info.out;
  Unmount();

  // Every block object is ciphertext: no marker, and the random file's bytes do not
  // show either.
  size_t blocks = 0, stored_bytes = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path("objects"))) {
    if (!e.is_regular_file()) continue;
    std::string obj = read_file(e.path().string());
    if (e.path().string().find("/chunks/") != std::string::npos) {
      blocks++;
      stored_bytes += obj.size();
    }
    EXPECT_EQ(obj.find(kMarker), std::string::npos) << e.path() << " holds plaintext";
    EXPECT_EQ(obj.find(noise.substr(4 << 20, 64)), std::string::npos) << e.path();
  }
  EXPECT_EQ(blocks, 3u + 2u + 1u);
  EXPECT_GT(stored_bytes, noise.size());  // the random file is in there, encrypted
  CliResult st = cli({"status", meta_url_});
  EXPECT_NE(st.out.find("aes256gcm-rsa"), std::string::npos) << st.out;
  EXPECT_EQ(st.out.find(kPassphrase), std::string::npos);

  // A fresh mount reads it all back from the store.
  MountWithKey();
  EXPECT_TRUE(read_file(mnt_ + "/text") == text);
  EXPECT_TRUE(read_file(mnt_ + "/noise") == noise);
  EXPECT_EQ(read_file(mnt_ + "/tiny"), tiny);
  Unmount();
}

TEST_F(Encryption, MountWithoutTheRightKeyFailsWithOneLine) {
  CliResult f = FormatEncrypted();
  ASSERT_EQ(f.code, 0) << f.err;
  ExpectMountFails({}, kPassphrase, "volume 'vol' is encrypted: give its RSA private key");
  ExpectMountFails({"--encrypt-rsa-key", other_key_}, nullptr,
                   "is not the one the volume was formatted with");
  ExpectMountFails({"--encrypt-rsa-key", key_}, "wrong passphrase",
                   "cannot decrypt the RSA key " + key_ + ": wrong passphrase?");
  ExpectMountFails({"--encrypt-rsa-key", key_}, nullptr,
                   "is passphrase-protected: set SLUICE_RSA_PASSPHRASE");
  ExpectMountFails({"--encrypt-rsa-key", path("missing.pem")}, kPassphrase,
                   "cannot read the RSA key " + path("missing.pem"));
  write_file(path("junk.pem"), "not a key\n");
  ExpectMountFails({"--encrypt-rsa-key", path("junk.pem")}, nullptr, "is not a PEM private key");
}

TEST_F(Encryption, EncryptionIsChosenOnlyAtFirstFormat) {
  // A plain volume: encryption cannot be added, and a key for it is refused at mount.
  std::string plain_url = "sqlite3://" + path("plain.db");
  CliResult f = cli({"format", plain_url, "plain", "--storage", "file://" + path("objects")});
  ASSERT_EQ(f.code, 0) << f.err;
  expect_one_line_error(cli_pass({"format", "--force", plain_url, "plain", "--encrypt-rsa-key",
                                  key_},
                                 kPassphrase),
                        "encryption is chosen only when a volume is first formatted");
  expect_one_line_error(cli_pass({"mount", plain_url, mnt_, "--encrypt-rsa-key", key_},
                                 kPassphrase),
                        "volume 'plain' is not encrypted");
  EXPECT_FALSE(is_mounted(mnt_));
  EXPECT_NE(cli({"status", plain_url}).out.find("encryption    none"), std::string::npos);

  // An encrypted volume: its key cannot be replaced; other settings still change and
  // keep the encryption.
  f = FormatEncrypted();
  ASSERT_EQ(f.code, 0) << f.err;
  std::string before = cli({"status", meta_url_}).out;
  expect_one_line_error(cli({"format", "--force", meta_url_, "vol", "--encrypt-rsa-key",
                             other_key_}),
                        "encryption is chosen only when a volume is first formatted");
  f = cli({"format", "--force", meta_url_, "vol", "--trash-days", "3"});
  ASSERT_EQ(f.code, 0) << f.err;
  std::string after = cli({"status", meta_url_}).out;
  auto encryption_row = [](const std::string& s) {
    size_t at = s.find("encryption ");
    return at == std::string::npos ? std::string() : s.substr(at, s.find('\n', at) - at);
  };
  EXPECT_NE(encryption_row(before).find("aes256gcm-rsa"), std::string::npos) << before;
  EXPECT_EQ(encryption_row(after), encryption_row(before));
}

TEST_F(Encryption, FormatChecksTheKeyBeforeWritingAnything) {
  expect_one_line_error(cli_pass({"format", meta_url_, "vol", "--storage",
                                  "file://" + path("objects"), "--encrypt-rsa-key", key_},
                                 "wrong"),
                        "wrong passphrase?");
  expect_one_line_error(cli({"format", meta_url_, "vol", "--storage", "file://" + path("objects"),
                             "--encrypt-rsa-key", path("missing.pem")}),
                        "cannot read the RSA key");
  EXPECT_FALSE(std::filesystem::exists(path("meta.db")));
  EXPECT_FALSE(std::filesystem::exists(path("objects")));
}

}  // namespace
}  // namespace sluice::test
