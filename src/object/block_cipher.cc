// AES-256-GCM block sealing and RSA-OAEP key wrapping on OpenSSL's EVP interface.
//
// Every OpenSSL failure leaves entries on the thread's error queue; they are cleared
// here so that a later, unrelated OpenSSL call on the same thread (the S3 client's TLS)
// does not report them. PEM passphrases come only through our callback, so OpenSSL
// never prompts on a terminal.
#include "object/block_cipher.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

namespace sluice::object {

namespace {

constexpr int kMinRsaBits = 2048;

// The first queued OpenSSL error as text (or `fallback`); clears the queue.
std::string openssl_error(const char* fallback) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
  void operator()(BIO* b) const { BIO_free(b); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;
using Bio = std::unique_ptr<BIO, CtxFree>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

std::string to_hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; i++) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

// The passphrase callback's state: whether OpenSSL asked (the PEM is encrypted).
struct PassState {
  const std::optional<std::string>* passphrase;
  bool asked = false;
};

int pass_cb(char* buf, int size, int /*rwflag*/, void* u) {
  auto* st = static_cast<PassState*>(u);
  st->asked = true;
  if (!st->passphrase->has_value()) return -1;
  const std::string& p = **st->passphrase;
  if (p.size() > static_cast<size_t>(size)) return -1;
  memcpy(buf, p.data(), p.size());
  return static_cast<int>(p.size());
}

}  // namespace

// ---- BlockCipher ----

Result<std::shared_ptr<const BlockCipher>> BlockCipher::generate() {
  std::shared_ptr<BlockCipher> c(new BlockCipher());
  if (RAND_bytes(c->key_, kKeySize) != 1) {
    return Status(Code::kIO, "cannot generate a data key: " + openssl_error("RAND_bytes failed"));
  }
  return std::shared_ptr<const BlockCipher>(std::move(c));
}

Result<std::shared_ptr<const BlockCipher>> BlockCipher::from_key(std::string_view key) {
  if (key.size() != kKeySize) {
    return Status(Code::kInvalid, "a data key is " + std::to_string(kKeySize) + " bytes, not " +
                                      std::to_string(key.size()));
  }
  std::shared_ptr<BlockCipher> c(new BlockCipher());
  memcpy(c->key_, key.data(), kKeySize);
  return std::shared_ptr<const BlockCipher>(std::move(c));
}

BlockCipher::~BlockCipher() { OPENSSL_cleanse(key_, kKeySize); }

Result<std::string> BlockCipher::encrypt(std::string_view plain, std::string_view aad) const {
  if (plain.size() > INT_MAX - kOverhead || aad.size() > INT_MAX) {
    return Status(Code::kInvalid, "block too large to encrypt");
  }
  std::string out(plain.size() + kOverhead, '\0');
  unsigned char* nonce = bytes(out);
  unsigned char* body = nonce + kNonceSize;
  auto fail = [](const char* what) {
    return Status(Code::kIO, std::string("AES-GCM encryption failed: ") + openssl_error(what));
  };
  if (RAND_bytes(nonce, kNonceSize) != 1) return fail("RAND_bytes");
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int n = 0, fin = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), body, &n, bytes(plain), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), body + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, body + plain.size()) != 1) {
    return fail("EVP");
  }
  return out;
}

Result<std::string> BlockCipher::decrypt(std::string_view sealed, std::string_view aad) const {
  if (sealed.size() < kOverhead) {
    return Status(Code::kCorruption, "encrypted payload of " + std::to_string(sealed.size()) +
                                         " bytes is shorter than nonce and tag");
  }
  if (sealed.size() > INT_MAX || aad.size() > INT_MAX) {
    return Status(Code::kCorruption, "encrypted payload too large");
  }
  const unsigned char* nonce = bytes(sealed);
  const unsigned char* body = nonce + kNonceSize;
  const size_t body_len = sealed.size() - kOverhead;
  std::string tag(sealed.substr(sealed.size() - kTagSize));
  std::string out(body_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int n = 0, fin = 0;
  bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) == 1 &&
      (aad.empty() ||
       EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes(aad), static_cast<int>(aad.size())) == 1) &&
      EVP_DecryptUpdate(ctx.get(), bytes(out), &n, body, static_cast<int>(body_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), bytes(out) + n, &fin) == 1;
  ERR_clear_error();
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());  // unauthenticated plaintext never escapes
    return Status(Code::kCorruption,
                  "authentication failed (wrong data key, or the block was altered or moved)");
  }
  return out;
}

// ---- RsaKey ----

Result<RsaKey> RsaKey::load(const std::string& path,
                            const std::optional<std::string>& passphrase) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) {
    return Status(Code::kNotFound,
                  "cannot read the RSA key " + path + ": " + std::string(strerror(errno)));
  }
  PassState st{&passphrase};
  EVP_PKEY* raw = PEM_read_PrivateKey(f, nullptr, pass_cb, &st);
  fclose(f);
  if (raw == nullptr) {
    std::string why = openssl_error("unknown error");
    if (st.asked && !passphrase) {
      return Status(Code::kAccess, "the RSA key " + path +
                                       " is passphrase-protected: set SLUICE_RSA_PASSPHRASE");
    }
    if (st.asked) {
      return Status(Code::kAccess,
                    "cannot decrypt the RSA key " + path + ": wrong passphrase? (" + why + ")");
    }
    return Status(Code::kInvalid, path + " is not a PEM private key (" + why + ")");
  }
  RsaKey k;
  k.pkey_.reset(raw, EVP_PKEY_free);
  if (!EVP_PKEY_is_a(raw, "RSA")) {
    return Status(Code::kInvalid, "the key in " + path + " is not an RSA key");
  }
  if (EVP_PKEY_get_bits(raw) < kMinRsaBits) {
    return Status(Code::kInvalid, "the RSA key in " + path + " has " +
                                      std::to_string(EVP_PKEY_get_bits(raw)) +
                                      " bits; use at least " + std::to_string(kMinRsaBits));
  }
  unsigned char* der = nullptr;
  int der_len = i2d_PUBKEY(raw, &der);
  if (der_len <= 0) {
    return Status(Code::kInvalid, "cannot encode the public half of " + path + ": " +
                                      openssl_error("i2d_PUBKEY"));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  int ok = EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return Status(Code::kIO, "SHA-256 failed: " + openssl_error("EVP_Digest"));
  k.fingerprint_ = "sha256:" + to_hex(md, md_len);
  return k;
}

namespace {

// An EVP_PKEY_CTX ready for RSA-OAEP (SHA-256, MGF1-SHA-256), for encrypt or decrypt.
PkeyCtx oaep_ctx(EVP_PKEY* pkey, bool encrypt) {
  PkeyCtx ctx(EVP_PKEY_CTX_new(pkey, nullptr));
  if (!ctx) return ctx;
  int init = encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get());
  if (init != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
    ctx.reset();
  }
  return ctx;
}

}  // namespace

Result<std::string> RsaKey::wrap(std::string_view secret) const {
  PkeyCtx ctx = oaep_ctx(pkey_.get(), true);
  size_t len = 0;
  if (!ctx || EVP_PKEY_encrypt(ctx.get(), nullptr, &len, bytes(secret), secret.size()) != 1) {
    return Status(Code::kIO, "RSA-OAEP wrap failed: " + openssl_error("EVP_PKEY_encrypt"));
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), bytes(out), &len, bytes(secret), secret.size()) != 1) {
    return Status(Code::kIO, "RSA-OAEP wrap failed: " + openssl_error("EVP_PKEY_encrypt"));
  }
  out.resize(len);
  return out;
}

Result<std::string> RsaKey::unwrap(std::string_view wrapped) const {
  PkeyCtx ctx = oaep_ctx(pkey_.get(), false);
  size_t len = 0;
  if (!ctx || EVP_PKEY_decrypt(ctx.get(), nullptr, &len, bytes(wrapped), wrapped.size()) != 1) {
    return Status(Code::kCorruption, "RSA-OAEP unwrap failed: " + openssl_error("EVP_PKEY_decrypt"));
  }
  std::string out(len, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), bytes(out), &len, bytes(wrapped), wrapped.size()) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return Status(Code::kCorruption, "RSA-OAEP unwrap failed: " + openssl_error("EVP_PKEY_decrypt"));
  }
  out.resize(len);
  return out;
}

// ---- volume keys ----

Result<std::pair<WrappedKey, std::shared_ptr<const BlockCipher>>> new_volume_key(const RsaKey& rsa) {
  ASSIGN_OR_RETURN(auto cipher, BlockCipher::generate());
  ASSIGN_OR_RETURN(std::string wrapped, rsa.wrap(cipher->key()));
  WrappedKey wk{base64_encode(wrapped), rsa.fingerprint()};
  return std::make_pair(std::move(wk), std::move(cipher));
}

Result<std::shared_ptr<const BlockCipher>> open_volume_key(const RsaKey& rsa,
                                                            const WrappedKey& stored) {
  if (rsa.fingerprint() != stored.fingerprint) {
    return Status(Code::kPermission, "this RSA key (" + rsa.fingerprint() +
                                         ") is not the one the volume was formatted with (" +
                                         stored.fingerprint + ")");
  }
  auto wrapped = base64_decode(stored.wrapped);
  if (!wrapped) return Status(Code::kCorruption, "the volume's wrapped data key is not base64");
  auto key = rsa.unwrap(*wrapped);
  if (!key.ok()) {
    return Status(Code::kCorruption,
                  "the volume's data key does not decrypt with its RSA key (damaged settings?): " +
                      key.status().message());
  }
  auto cipher = BlockCipher::from_key(*key);
  OPENSSL_cleanse(key->data(), key->size());
  if (!cipher.ok()) {
    return Status(Code::kCorruption, "the volume's data key is damaged: " +
                                         cipher.status().message());
  }
  return cipher;
}

// ---- base64 ----

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(bytes(out), bytes(data), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0 || text.size() > INT_MAX) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(bytes(out), bytes(text), static_cast<int>(text.size()));
  if (n < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the '=' padding as zero bytes.
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') pad++;
  if (text.size() > 1 && text[text.size() - 2] == '=') pad++;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace sluice::object
