// The nemutator CLI against a running controller, as a user types it.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/src/log.ts';
import { runCli } from '../../controller/src/cli/main.ts';
import { LOCAL_DEFAULTS, localSchema, startLocal, type LocalMode } from '../../controller/src/local/main.ts';
import { loadConfig } from '../../common/src/config.ts';

const run = promisify(execFile);
let local: LocalMode;
let stateDir: string;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...args, '--server', local.apiUrl.replace(/\/api\/v1$/, ''), '--state-dir', stateDir], { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n') });
  return { code, out, err };
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'nemu-cli-'));
  const { config } = loadConfig(localSchema, { program: 'test', argv: [], env: {}, defaults: { ...LOCAL_DEFAULTS, stateDir, webhookPort: 0, apiPort: 0, fleetPort: 0, agentMetricsPort: 0, reportInterval: 1000 } });
  local = await startLocal(config, silentLogger);
  // Wait for the in-process agent's first report.
  for (let i = 0; i < 100 && !local.agent.lastReport(); i++) await new Promise((r) => setTimeout(r, 50));
});
afterAll(() => local.stop());

describe('nemutator CLI', () => {
  it('lists the nodes, reading the admin token from the state directory', async () => {
    const { code, out } = await cli('nodes');
    expect(code).toBe(0);
    expect(out).toMatch(/^NODE\s+STATE\s+CPU/);
    expect(out).toContain(local.config.nodeName);
    const json = await cli('nodes', '-o', 'json');
    expect(JSON.parse(json.out)[0].name).toBe(local.config.nodeName);
  });

  it('reports the controller status', async () => {
    const { code, out } = await cli('status');
    expect(code).toBe(0);
    expect(out).toMatch(/\(local mode\): ready/);
  });

  it('says what to do when the controller is unreachable, a token is wrong or a command unknown', async () => {
    let err = '';
    const code = await runCli(['nodes', '--server', 'http://127.0.0.1:1'], { out: () => {}, err: (s) => (err += s) });
    expect(code).toBe(1);
    expect(err).toMatch(/cannot reach the controller at http:\/\/127\.0\.0\.1:1.*npm start/);
    const bad = await runCli(['nodes', '--server', local.apiUrl.replace(/\/api\/v1$/, ''), '--token', 'wrong'], { out: () => {}, err: (s) => (err = s) });
    expect(bad).toBe(1);
    expect(err).toContain('NEMU_ERR_UNAUTHORIZED');
    expect((await cli('frobnicate')).code).toBe(2);
  });

  it('runs as the installed bin, also under its kubectl plugin name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-bin-'));
    const plugin = join(dir, 'kubectl-nemutator');
    writeFileSync(plugin, `#!/bin/sh\nexec node ${join(process.cwd(), 'bin/nemutator.js')} "$@"\n`, { mode: 0o755 });
    const { stdout } = await run('kubectl', ['nemutator', 'version'], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = await run('node', ['bin/nemutator.js', '--help']).catch((e: { stdout: string }) => e);
    expect(help.stdout).toContain('Commands:');
  });
});
