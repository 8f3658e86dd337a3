// Encryption at rest, on OpenSSL: the AES-256-GCM cipher that seals data blocks, and the
// user's RSA key that wraps the volume's data key (see docs/encryption.md).
//
// A volume formatted with encryption has one random 32-byte data key. It is stored in
// the volume's settings only wrapped (RSA-OAEP with SHA-256) by the public half of a
// user-supplied RSA key, beside the SHA-256 fingerprint of that public key so that a
// mount given another key can say so instead of failing to decrypt. Only the holder of
// the private key can unwrap the data key; losing it loses the data.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace sluice::object {

// The name of the scheme in the volume settings (meta::Format::encryption).
constexpr const char* kEncryptionAesGcmRsa = "aes256gcm-rsa";

// AES-256-GCM with a fixed data key. Immutable after creation: every method is const and
// safe to call from any number of threads at once. The key is wiped on destruction.
class BlockCipher {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = kNonceSize + kTagSize;

  // A cipher over a fresh random key. Fails only if the system's random source does.
  static Result<std::shared_ptr<const BlockCipher>> generate();
  // kInvalid unless key is exactly kKeySize bytes.
  static Result<std::shared_ptr<const BlockCipher>> from_key(std::string_view key);

  BlockCipher(const BlockCipher&) = delete;
  BlockCipher& operator=(const BlockCipher&) = delete;
  ~BlockCipher();

  // nonce (12 random bytes) || ciphertext || tag (16): plain.size() + kOverhead bytes.
  // aad is authenticated, not stored: decrypt must be given the same.
  Result<std::string> encrypt(std::string_view plain, std::string_view aad) const;
  // The plaintext of encrypt's output, or kCorruption when the tag does not verify: the
  // wrong key, other aad, or any altered byte.
  Result<std::string> decrypt(std::string_view sealed, std::string_view aad) const;

  // The raw data key, for wrapping it. Never log or store it unwrapped.
  std::string_view key() const { return {reinterpret_cast<const char*>(key_), kKeySize}; }

 private:
  BlockCipher() = default;
  unsigned char key_[kKeySize] = {};
};

// A user's RSA private key, loaded from PEM. Copies share the key; thread-safe.
class RsaKey {
 public:
  // Loads a PEM private key (PKCS#8 or traditional, encrypted or not). passphrase is
  // used only if the PEM is encrypted. One-line errors: file unreadable; "is
  // passphrase-protected" when no passphrase was given; "cannot decrypt the RSA key ...
  // wrong passphrase?"; not a PEM private key; not RSA; shorter than 2048 bits.
  static Result<RsaKey> load(const std::string& path, const std::optional<std::string>& passphrase);

  // "sha256:" + the hex SHA-256 of the DER SubjectPublicKeyInfo of the public half.
  const std::string& fingerprint() const { return fingerprint_; }
  // RSA-OAEP (SHA-256, MGF1-SHA-256) with the public half.
  Result<std::string> wrap(std::string_view secret) const;
  // The inverse of wrap with the private half; kCorruption if it does not decrypt.
  Result<std::string> unwrap(std::string_view wrapped) const;

 private:
  std::shared_ptr<evp_pkey_st> pkey_;
  std::string fingerprint_;
};

// What the volume settings hold about its data key.
struct WrappedKey {
  std::string wrapped;      // base64 of RsaKey::wrap(data key)
  std::string fingerprint;  // RsaKey::fingerprint() of the wrapping key
};

// A fresh data key, wrapped by rsa; the cipher over it is returned beside it.
Result<std::pair<WrappedKey, std::shared_ptr<const BlockCipher>>> new_volume_key(const RsaKey& rsa);
// Unwraps the volume's data key. kPermission "... is not the key ..." when rsa's
// fingerprint differs from the one recorded; kCorruption when the fingerprint matches but
// the wrapped key does not decrypt (damaged settings).
Result<std::shared_ptr<const BlockCipher>> open_volume_key(const RsaKey& rsa,
                                                            const WrappedKey& stored);

std::string base64_encode(std::string_view data);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace sluice::object
