// etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?prefix=PREFIX] — metadata in an etcd v3
// cluster (3.4 or newer), reached through its JSON gateway (see kv/etcd_client.h for why).
//
// Transactions are optimistic, compare-and-swap on revisions: the first read of a
// transaction pins a snapshot revision R, later reads and scans read at R, writes are
// buffered, and commit is one etcd Txn whose compares assert that nothing the transaction
// read has changed since R (details and the trade-offs in etcd_engine.cc). A failed
// compare is kConflict, which Engine::transact retries. Read-only transactions never
// commit anything: their reads at R are already a consistent snapshot.
//
// Every key is stored as PREFIX + '\0' + 'd' + key, so several volumes share one cluster
// and no prefix's range contains another's. Authentication (user:password@) is not
// supported yet: the URL is refused with a one-line message.
#pragma once

#include <memory>

#include "common/url.h"
#include "kv/engine.h"

namespace sluice::kv {

// Connects to the cluster (fails fast with kUnavailable when no member answers). `create`
// has no meaning for etcd: a prefix with no keys is an empty database.
Result<std::shared_ptr<Engine>> open_etcd_engine(const Url& url, bool create);

}  // namespace sluice::kv
