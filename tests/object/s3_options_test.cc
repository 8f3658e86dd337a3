// S3 URL parsing (host, port, bucket, prefix, style, region), request addressing and the
// credentials order: URL options, then the environment, then the shared credentials file.
#include "object/s3_options.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "temp_dir.h"

namespace sluice::object {
namespace {

// Sets (or unsets, for nullopt) environment variables for one test and restores them.
using EnvVars = std::map<std::string, std::optional<std::string>>;

class ScopedEnv {
 public:
  explicit ScopedEnv(const EnvVars& vars) {
    for (const auto& [name, value] : vars) {
      const char* old = getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    }
  }

 private:
  EnvVars saved_;
};

// No credentials or region from the machine running the tests.
EnvVars clean_env(const std::string& home) {
  return {{"AWS_ACCESS_KEY_ID", std::nullopt},
          {"AWS_SECRET_ACCESS_KEY", std::nullopt},
          {"AWS_SESSION_TOKEN", std::nullopt},
          {"AWS_REGION", std::nullopt},
          {"AWS_PROFILE", std::nullopt},
          {"AWS_SHARED_CREDENTIALS_FILE", std::nullopt},
          {"HOME", home}};
}

Result<S3Options> parse(const std::string& url) {
  auto u = parse_url(url);
  if (!u.ok()) return u.status();
  return parse_s3_url(*u);
}

class S3OptionsTest : public ::testing::Test {
 protected:
  testing::TempDir home_;
  ScopedEnv env_{clean_env(home_.path())};
  const std::string keys_ = "access_key=AK&secret_key=SK";
};

TEST_F(S3OptionsTest, HttpsUrlWithDefaults) {
  auto o = parse("s3://s3.example.com/models?" + keys_);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->https);
  EXPECT_EQ(o->host, "s3.example.com");
  EXPECT_EQ(o->port, 0);
  EXPECT_EQ(o->bucket, "models");
  EXPECT_EQ(o->prefix, "");
  EXPECT_FALSE(o->virtual_style);
  EXPECT_EQ(o->region, "us-east-1");
  EXPECT_EQ(o->endpoint(), "s3.example.com:443");
  EXPECT_EQ(o->location(), "s3://s3.example.com/models");
  S3Target t = s3_target(*o, "vol/chunks/0/0/1_0_4");
  EXPECT_EQ(t.base_url, "https://s3.example.com");
  EXPECT_EQ(t.host, "s3.example.com");
  EXPECT_EQ(t.path, "/models/vol/chunks/0/0/1_0_4");
  EXPECT_EQ(s3_target(*o, "").path, "/models");
}

TEST_F(S3OptionsTest, HttpUrlWithPortPrefixRegionAndVirtualStyle) {
  auto o = parse("s3+http://127.0.0.1:9000/bkt/team/a//?region=eu-west-1&style=virtual&" + keys_);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_FALSE(o->https);
  EXPECT_EQ(o->host, "127.0.0.1");
  EXPECT_EQ(o->port, 9000);
  EXPECT_EQ(o->bucket, "bkt");
  EXPECT_EQ(o->prefix, "team/a/");
  EXPECT_EQ(o->region, "eu-west-1");
  EXPECT_TRUE(o->virtual_style);
  EXPECT_EQ(o->location(), "s3+http://127.0.0.1:9000/bkt/team/a");
  S3Target t = s3_target(*o, "k");
  EXPECT_EQ(t.base_url, "http://bkt.127.0.0.1:9000");
  EXPECT_EQ(t.host, "bkt.127.0.0.1:9000");
  EXPECT_EQ(t.path, "/k");
  EXPECT_EQ(s3_target(*o, "").path, "/");
}

TEST_F(S3OptionsTest, Ipv6HostAndRegionFromEnvironment) {
  ScopedEnv region(EnvVars{{"AWS_REGION", "ap-south-1"}});
  auto o = parse("s3+http://[::1]:8080/b?" + keys_);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->host, "[::1]");
  EXPECT_EQ(o->port, 8080);
  EXPECT_EQ(o->endpoint(), "[::1]:8080");
  EXPECT_EQ(o->region, "ap-south-1");
  EXPECT_EQ(parse("s3://h/b?region=us-west-2&" + keys_)->region, "us-west-2");
}

TEST_F(S3OptionsTest, BadUrlsFailWithOneLineWithoutSecrets) {
  struct Case {
    std::string url, needle;
  } cases[] = {
      {"s3://host?secret_key=TOPSECRET&access_key=AK", "missing bucket"},
      {"s3:///bucket?secret_key=TOPSECRET&access_key=AK", "missing host"},
      {"s3://host:99999/b?secret_key=TOPSECRET&access_key=AK", "port '99999'"},
      {"s3://host:x/b?secret_key=TOPSECRET&access_key=AK", "port 'x'"},
      {"s3://host/b?style=vhost&secret_key=TOPSECRET&access_key=AK", "style must be"},
      {"s3://host/b?regoin=x&secret_key=TOPSECRET&access_key=AK", "unknown S3 URL option 'regoin'"},
      {"s3://host/b/a/../c?secret_key=TOPSECRET&access_key=AK", "bad prefix"},
      {"s3://host/b?secret_key=TOPSECRET", "must be given together"},
  };
  for (const auto& c : cases) {
    auto o = parse(c.url);
    ASSERT_FALSE(o.ok()) << c.url;
    EXPECT_EQ(o.status().code(), Code::kInvalid) << c.url;
    EXPECT_NE(o.status().message().find(c.needle), std::string::npos) << o.status().message();
    EXPECT_EQ(o.status().message().find("TOPSECRET"), std::string::npos) << o.status().message();
    EXPECT_EQ(o.status().message().find('\n'), std::string::npos);
  }
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

const char* kCredentialsFile =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = FILE_AK\n"
    "aws_secret_access_key=FILE_SK\n"
    "\n"
    "[other]\n"
    "aws_access_key_id = OTHER_AK\n"
    "aws_secret_access_key = OTHER_SK\n"
    "aws_session_token = OTHER_TOKEN\n";

sigv4::Credentials creds(const std::string& url) {
  auto o = parse(url);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  return o.ok() ? o->credentials : sigv4::Credentials{};
}

TEST_F(S3OptionsTest, CredentialsComeFromUrlThenEnvironmentThenFile) {
  std::filesystem::create_directories(home_.path() + "/.aws");
  write_file(home_.path() + "/.aws/credentials", kCredentialsFile);
  EXPECT_EQ(creds("s3://h/b").access_key, "FILE_AK");
  EXPECT_EQ(creds("s3://h/b").secret_key, "FILE_SK");
  {
    ScopedEnv env(EnvVars{{"AWS_ACCESS_KEY_ID", "ENV_AK"},
                          {"AWS_SECRET_ACCESS_KEY", "ENV_SK"},
                          {"AWS_SESSION_TOKEN", "ENV_TOKEN"}});
    sigv4::Credentials c = creds("s3://h/b");
    EXPECT_EQ(c.access_key, "ENV_AK");
    EXPECT_EQ(c.secret_key, "ENV_SK");
    EXPECT_EQ(c.session_token, "ENV_TOKEN");
    c = creds("s3://h/b?access_key=URL_AK&secret_key=URL_SK");
    EXPECT_EQ(c.access_key, "URL_AK");
    EXPECT_EQ(c.secret_key, "URL_SK");
    EXPECT_EQ(c.session_token, "");
  }
  {
    // Half a key pair in the environment is ignored.
    ScopedEnv env(EnvVars{{"AWS_ACCESS_KEY_ID", "ENV_AK"}, {"AWS_PROFILE", "other"}});
    sigv4::Credentials c = creds("s3://h/b");
    EXPECT_EQ(c.access_key, "OTHER_AK");
    EXPECT_EQ(c.secret_key, "OTHER_SK");
    EXPECT_EQ(c.session_token, "OTHER_TOKEN");
  }
}

TEST_F(S3OptionsTest, SharedCredentialsFileVariableWins) {
  std::filesystem::create_directories(home_.path() + "/.aws");
  write_file(home_.path() + "/.aws/credentials", kCredentialsFile);
  write_file(home_.path() + "/elsewhere",
             "[default]\naws_access_key_id=E_AK\n"
             "aws_secret_access_key=E_SK\n");
  ScopedEnv env(EnvVars{{"AWS_SHARED_CREDENTIALS_FILE", home_.path() + "/elsewhere"}});
  EXPECT_EQ(creds("s3://h/b").access_key, "E_AK");
}

TEST_F(S3OptionsTest, NoCredentialsSaysWhereToPutThem) {
  auto o = parse("s3://h/b");
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), Code::kInvalid);
  EXPECT_NE(o.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_NE(o.status().message().find(home_.path() + "/.aws/credentials"), std::string::npos)
      << o.status().message();
  ScopedEnv env(EnvVars{{"AWS_PROFILE", "missing"}});
  std::filesystem::create_directories(home_.path() + "/.aws");
  write_file(home_.path() + "/.aws/credentials", kCredentialsFile);
  o = parse("s3://h/b");
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("[missing]"), std::string::npos) << o.status().message();
}

}  // namespace
}  // namespace sluice::object
