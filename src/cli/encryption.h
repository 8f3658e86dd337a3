// cli: the RSA key options of format and mount (--encrypt-rsa-key PEM, with the PEM's
// passphrase in $SLUICE_RSA_PASSPHRASE) and how commands show a volume's encryption.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "meta/types.h"
#include "object/block_cipher.h"

namespace sluice::cli {

constexpr const char* kPassphraseEnv = "SLUICE_RSA_PASSPHRASE";

// Loads the PEM private key at path, with the passphrase from $SLUICE_RSA_PASSPHRASE
// if it is set.
Result<object::RsaKey> load_rsa_key(const std::string& path);

// The cipher a mount of fmt needs: nullptr for an unencrypted volume given no key. Every
// mismatch is a one-line error: an encrypted volume without key_path, a key for an
// unencrypted volume, an unreadable key, a wrong passphrase, another RSA key than the
// volume's, an encryption this version does not know.
Result<std::shared_ptr<const object::BlockCipher>> volume_cipher(const meta::Format& fmt,
                                                                 const std::string& key_path);

// "none", or "aes256gcm-rsa (RSA key sha256:...)".
std::string encryption_text(const meta::Format& fmt);

}  // namespace sluice::cli
