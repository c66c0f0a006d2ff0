// The nemutator CLI against a running controller, as a user types it.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '#controller/cli/main.js';
import type { LocalMode } from '#local/main.js';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';

const run = promisify(execFile);
let t: TestLocal;
let local: LocalMode;
const cli = (...args: string[]) => t.cli(...args);

beforeAll(async () => {
  t = await startTestLocal();
  local = t.local;
});
afterAll(() => t?.stop());

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

  it('never sends a token over plain http to another machine, nor the local admin token anywhere but here', async () => {
    let err = '';
    const code = await runCli(['nodes', '--server', 'http://nemutator.example.com:8080', '--token', 'x'], { out: () => {}, err: (s) => (err += s) });
    expect(code).toBe(1);
    expect(err).toContain('NEMU_ERR_CONFIG');
    expect(err).toContain('in clear');
    // https to another machine without --token: the admin token file of this state dir is not sent.
    const { ApiClient } = await import('#controller/cli/client.js');
    const { loadCliConfig } = await import('#controller/cli/config.js');
    const remote = ApiClient.fromConfig(loadCliConfig(['--server', 'https://nemutator.example.com', '--state-dir', t.stateDir], {}).config) as unknown as {
      token: string;
    };
    const here = ApiClient.fromConfig(loadCliConfig(['--server', local.apiUrl.replace(/\/api\/v1$/, ''), '--state-dir', t.stateDir], {}).config) as unknown as {
      token: string;
    };
    expect(remote.token).toBe('');
    expect(here.token).not.toBe('');
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
