// s3_latency_proxy: an HTTP proxy in front of an S3 server (s3rver in the benchmarks) that
// makes loopback look like a remote object store, and counts what clients fetch. For
// bench/model_bench.sh; not part of Sluice. Node.js, standard library only.
//
//   node bench/s3_latency_proxy.js --listen PORT --upstream HOST:PORT
//        [--latency-ms 20] [--bw-mib 0]
//
// Clients use http://127.0.0.1:PORT as the S3 endpoint (path-style). Each request is held
// --latency-ms before it is forwarded (first-byte latency), and each client connection's
// response bodies are paced to --bw-mib MiB/s (0: unlimited), as one TCP stream to a
// remote store would be. Requests and headers pass through unchanged (s3rver does not check
// SigV4 signatures, so the Host header may name the proxy).
//
// Counters, per HTTP method: requests, response body bytes sent to clients ("out") and
// request body bytes received ("in"); and the requests in flight (received, response not
// yet finished): the most at once, and the mean over the time since the last reset (how
// many requests a client kept going; a store needs enough in flight to reach its rate).
//   GET  /__stats   -> {"requests":{"GET":n,...},"out":{"GET":bytes,...},"in":{...},
//                       "inflight":{"max":n,"mean":x}}
//   POST /__reset   -> zeroes the counters
// Prints "listening PORT" on stdout once it accepts connections.
'use strict';
const http = require('http');
const { Transform } = require('stream');

const opts = { listen: 0, upstream: '127.0.0.1:4568', 'latency-ms': 20, 'bw-mib': 0 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opts) || i + 1 >= process.argv.length) {
    console.error(`s3_latency_proxy: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  opts[k] = k === 'upstream' ? process.argv[i + 1] : Number(process.argv[i + 1]);
}
const [upHost, upPort] = opts.upstream.split(':');
const latency = opts['latency-ms'];
const bytesPerMs = (opts['bw-mib'] * 1048576) / 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

let stats;
// In flight: the count now, and its integral over time (request-milliseconds) since reset.
let inflight = 0, inflightArea = 0, inflightSince = 0, inflightMax = 0, resetAt = 0;
function inflightStep(d) {
  const now = Date.now();
  inflightArea += inflight * (now - inflightSince);
  inflightSince = now;
  inflight += d;
  inflightMax = Math.max(inflightMax, inflight);
}
function reset() {
  stats = { requests: {}, out: {}, in: {} };
  inflightStep(0);
  inflightArea = 0;
  inflightMax = inflight;
  resetAt = Date.now();
}
function add(kind, method, n) { stats[kind][method] = (stats[kind][method] || 0) + n; }
reset();

// Paces the bytes written to one client connection; also counts them.
function pacer(socket, method) {
  return new Transform({
    transform(chunk, _enc, done) {
      add('out', method, chunk.length);
      if (bytesPerMs <= 0) return done(null, chunk);
      const now = Date.now();
      const start = Math.max(now, socket.sluiceNext || 0);
      socket.sluiceNext = start + chunk.length / bytesPerMs;
      const wait = socket.sluiceNext - now;
      this.push(chunk);
      if (wait >= 2) setTimeout(done, wait); else done();
    },
  });
}

const server = http.createServer((req, res) => {
  if (req.url === '/__stats') {
    inflightStep(0);
    const ms = Date.now() - resetAt;
    stats.inflight = { max: inflightMax, mean: ms > 0 ? +(inflightArea / ms).toFixed(2) : 0 };
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(stats) + '\n');
  }
  if (req.url === '/__reset') {
    reset();
    res.writeHead(200);
    return res.end('reset\n');
  }
  const method = req.method;
  add('requests', method, 1);
  inflightStep(1);
  res.on('close', () => inflightStep(-1));  // finished or aborted, once either way
  req.on('data', (c) => add('in', method, c.length));
  req.pause();
  setTimeout(() => {
    const up = http.request({
      host: upHost, port: Number(upPort), method, path: req.url, headers: req.headers, agent,
    }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(pacer(req.socket, method)).pipe(res);
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${e.message}\n`);
    });
    req.pipe(up);
    req.resume();
  }, latency);
});
server.keepAliveTimeout = 60000;
server.headersTimeout = 65000;
server.listen(opts.listen, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
