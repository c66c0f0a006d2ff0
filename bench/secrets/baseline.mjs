// The baseline: a bare HTTP server on a unix socket, fixed JSON for reads and a broadcast of
// one NDJSON line to every open stream — no identity, no Vault, no cache.
import http from 'node:http';

export function startBaseline(socketPath, body) {
  const streams = new Set();
  const server = http.createServer((req, res) => {
    if (req.url === '/v1/secrets/watch') {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.flushHeaders();
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  server.maxConnections = 20000;
  return new Promise((resolve) =>
    server.listen({ path: socketPath, backlog: 4096 }, () =>
      resolve({
        broadcast(line) {
          for (const s of streams) s.write(line + '\n');
          return streams.size;
        },
        stop: () =>
          new Promise((r) => {
            for (const s of streams) s.destroy();
            server.close(() => r());
            server.closeAllConnections();
          }),
      }),
    ),
  );
}
