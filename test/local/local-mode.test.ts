// `npm start` exactly as the README says, on free ports and a temporary state directory.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { freePort } from '../harness/ports.ts';
import { until } from '../harness/wait.ts';

function collect(child: ChildProcess): { text: () => string } {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return { text: () => out };
}

/** The harness's wait, with a failed probe (the port not open yet) counted as not yet. */
const waitFor = <T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> => until(what, () => fn().catch(() => undefined), ms);

describe('npm start (local mode)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

  it('reaches /readyz within 20 s, prints where everything is, shows this machine as a node, and stops cleanly on Ctrl-C', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'nemu-local-'));
    const [webhook, api, fleet, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const started = Date.now();
    const child = spawn(
      'npm',
      [
        'start',
        '--',
        '--state-dir',
        stateDir,
        '--webhook-port',
        String(webhook),
        '--api-port',
        String(api),
        '--fleet-port',
        String(fleet),
        '--scheduler-port',
        '0',
        '--agent-metrics-port',
        String(metrics),
        '--report-interval',
        '1s',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    children.push(child);
    const out = collect(child);
    await waitFor('/readyz', async () => ((await fetch(`http://127.0.0.1:${api}/readyz`)).status === 200 ? true : undefined), 20_000);
    expect(Date.now() - started).toBeLessThan(20_000);
    await waitFor('the banner', async () => (out.text().includes('Ctrl-C') ? true : undefined), 5000);
    expect(out.text()).toContain(`https://127.0.0.1:${webhook}/mutate`);
    expect(out.text()).toContain(`http://127.0.0.1:${api}/api/v1`);
    expect(out.text()).toContain(`wss://127.0.0.1:${fleet}/fleet`);
    expect(out.text()).toMatch(/\n {2}scheduler extender https:\/\/127\.0\.0\.1:\d+\/scheduler\/v1\/\{filter,prioritize\}/);

    const token = readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
    const auth = { authorization: `Bearer ${token}` };
    // The agent on this machine reports over the fleet link with live numbers.
    const node = await waitFor(
      'a node report',
      async () => {
        const { items } = (await (await fetch(`http://127.0.0.1:${api}/api/v1/nodes`, { headers: auth })).json()) as {
          items: Array<{ connected: boolean; cpuCores: number; memoryTotalBytes: number; lastReportAgeSeconds: number | null }>;
        };
        return items[0]?.connected && items[0].lastReportAgeSeconds !== null ? items[0] : undefined;
      },
      10_000,
    );
    expect(node.cpuCores).toBeGreaterThan(0);
    expect(node.memoryTotalBytes).toBeGreaterThan(0);
    expect((await fetch(`http://127.0.0.1:${api}/api/v1/nodes`)).status).toBe(401);

    // Ctrl-C (SIGINT to the process group, as a terminal does) stops everything.
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    process.kill(-child.pid!, 'SIGINT');
    await exited;
    // npm itself dies of the SIGINT like any foreground job; what matters is that Nemutator
    // shut down in order.
    await waitFor('the goodbye', async () => (out.text().includes('stopped.') ? true : undefined), 5000);
    await expect(fetch(`http://127.0.0.1:${api}/readyz`)).rejects.toThrow();
  }, 60_000);

  it('stops with an error naming the key when a config value is wrong', async () => {
    const child = spawn('npm', ['start', '--', '--webhook-port', 'abc'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const out = collect(child);
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).not.toBe(0);
    expect(out.text()).toContain('NEMU_ERR_CONFIG');
    expect(out.text()).toContain('webhookPort');
    expect(out.text()).toContain('"abc"');
    expect(out.text()).toContain('a TCP port');
  }, 30_000);
});
