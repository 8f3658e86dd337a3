// A fixed-size thread pool for background work (uploads, prefetch, cleanup).
// submit() never blocks; tasks run in FIFO order. The destructor drains the queue.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice {

class ThreadPool {
 public:
  explicit ThreadPool(size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Thread-safe. Tasks submitted after shutdown began are dropped.
  void submit(std::function<void()> task);
  size_t queued() const;

 private:
  void worker();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sluice
