// Which metadata engine and object store the integration suite runs on. The environment
// chooses, so that one `integration` binary covers every backend (tests/CMakeLists.txt
// runs it once per backend):
//   SLUICE_TEST_META     sqlite3 (default) | postgres | redis | etcd (servers on loopback:
//                        servers/postgres_server.h, redis_server.h, etcd_server.h)
//   SLUICE_TEST_STORAGE  file (default) | s3 (s3rver on loopback, servers/s3_server.h)
// Each call returns the URL of a fresh, empty namespace named by `unique` (a new key prefix
// or bucket path), so tests stay independent while one server serves the whole process.
// A backend that cannot run yields an error string instead of a URL.
#pragma once

#include <cstdlib>
#include <string>

#include "servers/postgres_server.h"
#include "servers/redis_server.h"
#include "servers/etcd_server.h"
#include "servers/s3_server.h"

namespace sluice::test {

struct BackendUrl {
  std::string url;    // empty when the backend cannot run
  std::string error;  // why, then
};

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

inline std::string test_meta_kind() { return env_or("SLUICE_TEST_META", "sqlite3"); }
inline std::string test_storage_kind() { return env_or("SLUICE_TEST_STORAGE", "file"); }

// dir: the test's scratch directory. sqlite_options: appended to a sqlite3:// URL only
// (e.g. "?sync=normal").
inline BackendUrl test_meta_url(const std::string& dir, const std::string& unique,
                                const std::string& sqlite_options) {
  const std::string kind = test_meta_kind();
  if (kind == "sqlite3") return {"sqlite3://" + dir + "/meta.db" + sqlite_options, ""};
  if (kind == "postgres") {
    sluice::testing::PostgresServer* pg = sluice::testing::PostgresServer::get();
    if (pg == nullptr) {
      return {"", "PostgreSQL cannot run: " + sluice::testing::PostgresServer::why()};
    }
    return {pg->url(unique), ""};
  }
  if (kind == "redis") {
    sluice::testing::RedisServer* redis = sluice::testing::RedisServer::get();
    if (redis == nullptr) return {"", "redis-server cannot run: " + sluice::testing::RedisServer::why()};
    return {redis->fresh_url(), ""};
  }
  if (kind == "etcd") {
    sluice::testing::EtcdCluster* etcd = sluice::testing::EtcdCluster::get();
    if (etcd == nullptr) return {"", "etcd cannot run: " + sluice::testing::EtcdCluster::why()};
    return {etcd->fresh_url(), ""};
  }
  return {"", "unknown SLUICE_TEST_META '" + kind + "'"};
}

inline BackendUrl test_storage_url(const std::string& dir, const std::string& unique) {
  const std::string kind = test_storage_kind();
  if (kind == "file") return {"file://" + dir + "/objects", ""};
  if (kind == "s3") {
    sluice::testing::S3rver* s3 = sluice::testing::S3rver::get();
    if (s3 == nullptr) return {"", "s3rver cannot run: " + sluice::testing::S3rver::why()};
    return {s3->url(std::string(sluice::testing::kS3Bucket) + "/" + unique), ""};
  }
  return {"", "unknown SLUICE_TEST_STORAGE '" + kind + "'"};
}

}  // namespace sluice::test
