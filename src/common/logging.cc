// Logging setup over spdlog.
#include "common/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace sluice {

void init_logging(const std::string& level, const std::string& file) {
  std::shared_ptr<spdlog::logger> logger;
  if (file.empty()) {
    logger = spdlog::stderr_logger_mt("sluice");
  } else {
    logger = spdlog::basic_logger_mt("sluice", file);
    logger->flush_on(spdlog::level::info);
  }
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %t %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace sluice
