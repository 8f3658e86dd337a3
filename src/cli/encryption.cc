// The RSA key options of format and mount, and how a volume's encryption is shown.
#include "cli/encryption.h"

#include <cstdlib>

namespace sluice::cli {

Result<object::RsaKey> load_rsa_key(const std::string& path) {
  std::optional<std::string> passphrase;
  if (const char* p = getenv(kPassphraseEnv)) passphrase = p;
  return object::RsaKey::load(path, passphrase);
}

Result<std::shared_ptr<const object::BlockCipher>> volume_cipher(const meta::Format& fmt,
                                                                 const std::string& key_path) {
  if (fmt.encryption.empty()) {
    if (key_path.empty()) return std::shared_ptr<const object::BlockCipher>();
    return Status(Code::kInvalid, "volume '" + fmt.name +
                                      "' is not encrypted: drop --encrypt-rsa-key (encryption "
                                      "is chosen when a volume is formatted)");
  }
  if (fmt.encryption != object::kEncryptionAesGcmRsa) {
    return Status(Code::kNotSupported, "volume '" + fmt.name + "' uses encryption '" +
                                           fmt.encryption + "', which this version of sluice "
                                           "does not know");
  }
  if (key_path.empty()) {
    return Status(Code::kInvalid, "volume '" + fmt.name +
                                      "' is encrypted: give its RSA private key with "
                                      "--encrypt-rsa-key PEM (passphrase in " +
                                      kPassphraseEnv + ")");
  }
  ASSIGN_OR_RETURN(object::RsaKey rsa, load_rsa_key(key_path));
  auto cipher = object::open_volume_key(
      rsa, object::WrappedKey{fmt.encryption_key, fmt.encryption_key_fingerprint});
  if (!cipher.ok()) {
    return Status(cipher.status().code(), "cannot unlock volume '" + fmt.name + "' with " +
                                              key_path + ": " + cipher.status().message());
  }
  return cipher;
}

std::string encryption_text(const meta::Format& fmt) {
  if (fmt.encryption.empty()) return "none";
  return fmt.encryption + " (RSA key " + fmt.encryption_key_fingerprint + ")";
}

}  // namespace sluice::cli
