import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';

import { recommend } from './engine.ts';
import { PrometheusClient } from './prometheus.ts';
import { hoursFilter } from './queries.ts';
import { brainsets, classifyHours, describeSchedule, hourOfWeek, hourOfWeekProfile, seasonAt } from './seasons.ts';
import { deploymentOfReplicaSet, ownerFromPodName, type Stats } from './statistics.ts';
import { exceedance } from './whatif.ts';

describe('seasons', () => {
  it('hour of week counts from Sunday 00:00 UTC, as PromQL day_of_week() × 24 + hour()', () => {
    expect(hourOfWeek(Date.UTC(2026, 10, 22, 0, 30))).toBe(0); // Sunday
    expect(hourOfWeek(Date.UTC(2026, 10, 25, 16, 59))).toBe(3 * 24 + 16); // Wednesday
  });

  it('classifies hours at min + threshold × (max − min); hours without data are peak', () => {
    const profile: Array<number | null> = new Array(168).fill(null);
    for (let h = 0; h < 24; h++) profile[24 + h] = h >= 9 && h < 17 ? 10 : 2;
    const s = classifyHours(profile, 0.5);
    expect(s.threshold).toBe(6);
    expect(s.offPeakHours).toEqual([...Array.from({ length: 9 }, (_, i) => 24 + i), ...Array.from({ length: 7 }, (_, i) => 41 + i)]);
    expect(s.hours[0]).toBe('peak');
    expect(seasonAt(s, Date.UTC(2026, 10, 23, 3))).toBe('off-peak'); // Monday 03:00
    expect(seasonAt(undefined, Date.now())).toBe('peak');
    expect(describeSchedule(s).find((r) => r.from === 'Mon 09:00')).toEqual({ season: 'peak', from: 'Mon 09:00', to: 'Mon 17:00', hours: 8 });
  });

  it('averages a range query into the hour-of-week profile', () => {
    const monday9 = Date.UTC(2026, 10, 23, 9) / 1000;
    const p = hourOfWeekProfile([
      [monday9, 1],
      [monday9 + 1800, 3],
      [monday9 + 7 * 86400, 5],
    ]);
    expect(p[24 + 9]).toBe(3);
    expect(p[24 + 10]).toBeNull();
  });

  it('turns a set of hours into few PromQL ranges', () => {
    expect(hoursFilter([9, 10, 11, 15])).toBe('((day_of_week() * 24 + hour()) >= 9 <= 11) or ((day_of_week() * 24 + hour()) == 15)');
    expect(hoursFilter(Array.from({ length: 168 }, (_, i) => i))).toBe('vector(1)');
  });
});

describe('owners from names', () => {
  it('reads Deployments and StatefulSets from pod names, keeps other pods as themselves', () => {
    expect(ownerFromPodName('ns', 'web-7d4b9c8f5-x2kqz')).toEqual({ namespace: 'ns', kind: 'Deployment', name: 'web' });
    expect(ownerFromPodName('ns', 'db-0')).toEqual({ namespace: 'ns', kind: 'StatefulSet', name: 'db' });
    expect(ownerFromPodName('ns', 'node-agent-x2kqz')).toEqual({ namespace: 'ns', kind: 'Pod', name: 'node-agent-x2kqz' });
    expect(deploymentOfReplicaSet('my-app-5c8d7b6f4')).toBe('my-app');
    expect(deploymentOfReplicaSet('standalone')).toBeUndefined();
  });
});

describe('engine and risk', () => {
  const stats: Stats = {
    cpu: { min: 0.1, avg: 0.3, max: 1, p50: 0.3, p90: 0.5, p95: 0.6, p99: 0.9 },
    memory: { min: 100, avg: 150, max: 200 * 2 ** 20 },
    seasonCpu: { peak: 0.8, 'off-peak': 0.2 },
    oomKilled: false,
    throttling: null,
    historySeconds: 3600,
  };
  const b = brainsets({ peakCpuPercentile: 0.95, peakCpuMargin: 0.15, offPeakCpuPercentile: 0.9, offPeakCpuMargin: 0.1, memoryMargin: 0.15 });
  const params = { minCpu: 0.01, minMemory: 32 * 2 ** 20, oomMargin: 0.2, limitsPolicy: 'from-max' as const, confidenceSeconds: 7200 };

  it('from-max limits sit at the max usage with margin, at least the request; confidence grows with history', () => {
    const r = recommend(stats, b.peak, params);
    expect(r.requests.cpu).toBeCloseTo(0.92, 12);
    expect(r.limits.cpu).toBeCloseTo(1.15, 12);
    expect(r.limits.memory).toBeCloseTo(200 * 2 ** 20 * 1.35, 3);
    expect(r.confidence).toBe(0.5);
    expect(recommend({ ...stats, seasonCpu: {} }, b['off-peak'], params).basis.cpu).toMatch(/p95 \(no usage in this season\)/);
  });

  it('risk is the share of time above the request, interpolated between the quantiles', () => {
    expect(exceedance(stats.cpu, 1)).toBe(0);
    expect(exceedance(stats.cpu, 0.05)).toBe(1);
    expect(exceedance(stats.cpu, 0.3)).toBeCloseTo(0.5, 12);
    expect(exceedance(stats.cpu, 0.55)).toBeCloseTo(0.075, 12);
  });
});

describe('Prometheus client errors', () => {
  it('names the URL and the flag to check when Prometheus cannot be reached', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const p = new PrometheusClient(`http://127.0.0.1:${port}`, { timeoutMs: 2000 });
    await expect(p.query('up')).rejects.toMatchObject({
      code: 'NEMU_ERR_PROMETHEUS',
      message: `Prometheus at http://127.0.0.1:${port} is unreachable: ECONNREFUSED; check --prometheus-url`,
    });
    expect(() => new PrometheusClient('')).toThrow(/--prometheus-url/);
  });

  it('says when no answer came within the timeout', async () => {
    const hang = (() =>
      new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), 10))) as unknown as typeof fetch;
    await expect(new PrometheusClient('http://prom:9090', { fetch: hang, timeoutMs: 10 }).query('up')).rejects.toThrow(
      /no answer within 10 ms \(raise --prometheus-timeout/,
    );
  });
});
