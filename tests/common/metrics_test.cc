// The metrics registry: counters, collectors that live as long as their handle, and the
// Prometheus text format (one HELP/TYPE per family, labels kept, integers unpadded).
#include "common/metrics.h"

#include <gtest/gtest.h>

namespace sluice::metrics {
namespace {

TEST(Metrics, CountersAccumulateAndAreSharedByName) {
  Registry r;
  Counter& a = r.counter("t_ops_total", "ops");
  a.add();
  a.add(41);
  EXPECT_EQ(&r.counter("t_ops_total", "ignored"), &a);
  auto s = r.collect();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].name, "t_ops_total");
  EXPECT_EQ(s[0].value, 42);
  EXPECT_EQ(s[0].kind, Kind::kCounter);
}

TEST(Metrics, CollectorsLiveAsLongAsTheirHandle) {
  Registry r;
  int calls = 0;
  {
    Registry::Handle h = r.add_collector([&](std::vector<Sample>& out) {
      calls++;
      out.push_back({"t_gauge", "g", Kind::kGauge, 1.5});
    });
    auto s = r.collect();
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].value, 1.5);
    Registry::Handle moved = std::move(h);
    EXPECT_EQ(r.collect().size(), 1u);
  }
  EXPECT_TRUE(r.collect().empty());
  EXPECT_EQ(calls, 2);
}

TEST(Metrics, PrometheusTextGroupsFamiliesAndKeepsLabels) {
  Registry r;
  r.counter("t_b_total", "b help").add(7);
  Registry::Handle h = r.add_collector([](std::vector<Sample>& out) {
    out.push_back({"t_a{kind=\"write\"}", "a help", Kind::kCounter, 3});
    out.push_back({"t_a_extra", "x", Kind::kGauge, 0.25});
    out.push_back({"t_a", "a help", Kind::kCounter, 1});
    out.push_back({"t_a{kind=\"read\"}", "a help", Kind::kCounter, 2});
  });
  EXPECT_EQ(prometheus_text(r.collect()),
            "# HELP t_a a help\n# TYPE t_a counter\n"
            "t_a 1\nt_a{kind=\"read\"} 2\nt_a{kind=\"write\"} 3\n"
            "# HELP t_a_extra x\n# TYPE t_a_extra gauge\nt_a_extra 0.25\n"
            "# HELP t_b_total b help\n# TYPE t_b_total counter\nt_b_total 7\n");
}

TEST(Metrics, HelpIsEscapedAndLargeValuesStayExact) {
  std::vector<Sample> s = {{"t_big", "line1\nback\\slash", Kind::kCounter, 123456789012.0}};
  EXPECT_EQ(prometheus_text(s),
            "# HELP t_big line1\\nback\\\\slash\n# TYPE t_big counter\nt_big 123456789012\n");
}

}  // namespace
}  // namespace sluice::metrics
