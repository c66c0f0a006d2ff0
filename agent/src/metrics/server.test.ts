import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

import type { INodeReport } from '#proto/codec.js';

import { renderPrometheus } from './exposition.ts';
import { type MetricsEndpoint, metricsRequestListener } from './server.ts';

const ID = 'a'.repeat(64);

/** A node of 400 pods: a page of ~1 MB, many chunks and socket writes. */
const busyNode: INodeReport = {
  seq: 3,
  pods: Array.from({ length: 400 }, (_, i) => ({
    uid: `uid-${i}`,
    namespace: 'shop',
    name: `cart-${i}`,
    containers: [
      {
        id: ID,
        name: 'app',
        cgroupPath: `/kubepods.slice/kubepods-pod${i}.slice/cri-containerd-${ID}.scope`,
        cpuUsageSecondsTotal: i,
        cpuPeriodsTotal: 100,
        cpuThrottledPeriodsTotal: 4,
        cpuThrottledSecondsTotal: 0.25,
        memoryWorkingSetBytes: 2048,
        memoryUsageBytes: 4096,
        ioReadBytesTotal: 1,
        ioWriteBytesTotal: 2,
        processes: 3,
      },
    ],
  })),
};

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function serve(endpoint: MetricsEndpoint): Promise<string> {
  const server = createServer(metricsRequestListener(endpoint));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('the agent metrics endpoint', () => {
  it('serves the whole page of a busy node, as renderPrometheus renders it', async () => {
    const url = await serve({ report: async () => busyNode, health: () => ({}) });
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    const body = await res.text();
    expect(body.length).toBeGreaterThan(500_000);
    expect(body).toBe(renderPrometheus(busyNode));
  });

  it('answers /healthz with the link state, 500 when collecting fails, 404 elsewhere', async () => {
    const url = await serve({
      report: () => Promise.reject(new Error('cgroup root vanished')),
      health: () => ({ link: 'connected' }),
    });
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok', link: 'connected' });
    const failed = await fetch(`${url}/metrics`);
    expect(failed.status).toBe(500);
    expect(await failed.text()).toBe('collecting metrics failed: cgroup root vanished\n');
    expect((await fetch(`${url}/other`)).status).toBe(404);
  });

  it('keeps serving after a scraper hangs up in the middle of a page', async () => {
    const url = await serve({ report: async () => busyNode, health: () => ({}) });
    await new Promise<void>((resolve, reject) => {
      const req = request(`${url}/metrics`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.once('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.end();
    });
    const again = await fetch(`${url}/metrics`);
    expect(await again.text()).toBe(renderPrometheus(busyNode));
  });
});
