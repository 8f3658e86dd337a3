// Logging: a thin setup layer over spdlog. Every module logs through the default
// spdlog logger; init_logging() decides where that goes (stderr or a file).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace sluice {

// level: "debug", "info", "warn", "error". An empty file logs to stderr.
void init_logging(const std::string& level, const std::string& file = "");

}  // namespace sluice

#define LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define LOG_INFO(...) spdlog::info(__VA_ARGS__)
#define LOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define LOG_ERROR(...) spdlog::error(__VA_ARGS__)
