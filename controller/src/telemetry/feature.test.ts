import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { testControllerConfig } from '#test/harness/controller.js';

import type { ControllerParts } from '../app.ts';
import { type ApiRequest, Router } from '../server/router.ts';
import { registerTelemetryRoutes, telemetryFeature } from './feature.ts';

function get(router: Router, path: string): Promise<unknown> {
  const { route, params } = router.match('GET', path);
  if (!route) throw new Error(`no route for GET ${path}`);
  return Promise.resolve(route.handler({ method: 'GET', path, params, query: new URLSearchParams(), headers: {} } as unknown as ApiRequest));
}

describe('registerTelemetryRoutes', () => {
  // The routes serve the feature they are handed (features.ts hands them the one admission
  // uses); with none, as without --prometheus-url, each says how to turn telemetry on.
  it('without a telemetry feature, every telemetry route answers 503 NEMU_ERR_CONFIG naming --prometheus-url', async () => {
    const router = new Router();
    const parts = { config: { resizeOnSeasonFlip: 'off' } } as unknown as ControllerParts;
    registerTelemetryRoutes(router, parts, undefined);
    const paths: Array<[string, string]> = [
      ['GET', '/api/v1/seasons'],
      ['GET', '/api/v1/telemetry'],
      ['POST', '/api/v1/telemetry/refresh'],
      ['GET', '/api/v1/recommendations'],
      ['GET', '/api/v1/whatif'],
      ['GET', '/api/v1/model'],
      ['GET', '/api/v1/resizes'],
      ['POST', '/api/v1/resizes/flip'],
      ['POST', '/api/v1/resizes/01J0000000000000000000000/rollback'],
    ];
    for (const [method, path] of paths) {
      const { route, params } = router.match(method, path);
      expect(route, `${method} ${path}`).toBeDefined();
      const req = { method, path, params, query: new URLSearchParams(), headers: {} } as unknown as ApiRequest;
      const failure = await Promise.resolve()
        .then(() => route!.handler(req))
        .then(
          () => undefined,
          (e: { code?: string; status?: number; message?: string }) => e,
        );
      expect(failure, `${method} ${path}`).toMatchObject({ code: 'NEMU_ERR_CONFIG', status: 503 });
      expect(failure?.message, `${method} ${path}`).toMatch(/--prometheus-url/);
    }
  });

  it('serve the feature they are handed, whichever controller built it', async () => {
    const stops: Array<() => unknown> = [];
    // Prometheus is not reached here: the schedule answers without a refresh.
    const config = testControllerConfig({ prometheusUrl: 'http://127.0.0.1:9' });
    const parts = {
      config,
      log: silentLogger,
      metrics: { registry: new Registry() },
      isLeader: () => false,
      onStop: (f: () => unknown) => void stops.push(f),
    } as unknown as ControllerParts;
    const feature = await telemetryFeature(parts);
    try {
      expect(feature).toBeDefined();
      const router = new Router();
      registerTelemetryRoutes(router, parts, feature);
      expect(await get(router, '/api/v1/seasons')).toMatchObject({ timezone: 'UTC', season: feature!.telemetry.currentSeason() });
      const other = new Router();
      registerTelemetryRoutes(other, parts, undefined);
      await expect(get(other, '/api/v1/seasons')).rejects.toMatchObject({ code: 'NEMU_ERR_CONFIG', status: 503 });
    } finally {
      for (const stop of stops) await stop();
    }
  });
});
