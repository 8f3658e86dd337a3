// cli/mount_metrics: what a mount exports to the metrics registry (common/metrics.h),
// and the `--metrics ADDR` HTTP endpoint that serves it in the Prometheus text format.
#pragma once

#include <memory>
#include <string>

#include "common/metrics.h"
#include "common/status.h"
#include "vfs/vfs.h"

namespace sluice::cli {

// Adds the mount's statistics (vfs, block cache, metadata engine, process) to the global
// registry; they stay there while the handle lives. `vfs` must outlive the handle.
metrics::Registry::Handle register_mount_metrics(vfs::Vfs& vfs);

// Serves GET /metrics on ADDR ("HOST:PORT", or ":PORT" for 127.0.0.1) on its own thread.
class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  // Binds (a bind failure is a one-line kInvalid naming the address) and starts serving.
  Status start(const std::string& addr);
  void stop();
  int port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace sluice::cli
