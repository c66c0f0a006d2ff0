// Secrets on one machine, as the README's two commands do it: local mode (`npm start`'s
// program, in a child process), `nemutator secrets put`, and `nemutator run` of a program that
// proves what it received by printing sha256 hashes, never values. The program runs in a real
// pod-shaped cgroup through the real launcher; a new `put` reaches it as a rewritten file and
// SIGHUP. Every byte any process printed is searched for the values.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { buildLauncher } from '../harness/build-native.ts';
import { cgroupV2Root } from '../harness/cgroup.ts';
import { type LocalProcess, startLocalProcess } from '../harness/local-process.ts';
import { startVaultDouble, type VaultDouble } from '../harness/vault/index.ts';
import { until } from '../harness/wait.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const secretValue = () => `pw-${randomBytes(12).toString('hex')}`;
const FIXTURE = 'test/fixtures/local/hash-secrets.mjs';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Captured {
  code: number | null;
  out: string;
  err: string;
}

/** Everything any process of a test printed, to search for values. */
const printed: string[] = [];

function cliArgs(local: LocalProcess, args: string[]): string[] {
  // Global flags first: after `--` everything is the program's (nemutator run).
  return ['bin/nemutator.js', '--server', local.apiUrl.replace(/\/api\/v1$/, ''), '--state-dir', local.stateDir, ...args];
}

/** `nemutator <args>` against local mode, to completion. */
function cli(local: LocalProcess, args: string[], opts: { stdin?: string; uid?: number } = {}): Promise<Captured> {
  const child = spawn(process.execPath, cliArgs(local, args), {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}),
  });
  const r: Captured = { code: null, out: '', err: '' };
  child.stdout!.on('data', (d) => (r.out += d));
  child.stderr!.on('data', (d) => (r.err += d));
  child.stdin!.end(opts.stdin ?? '');
  return new Promise((resolve) =>
    child.on('close', (code) => {
      r.code = code;
      printed.push(r.out, r.err);
      resolve(r);
    }),
  );
}

interface Running {
  child: ChildProcess;
  out(): string;
  exited: Promise<number | null>;
}

/** `nemutator run <args>`, left running. */
function run(local: LocalProcess, args: string[]): Running {
  const child = spawn(process.execPath, cliArgs(local, ['run', ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  cleanups.push(async () => {
    printed.push(text);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  return { child, out: () => text, exited };
}

async function startLocal(env: Record<string, string> = {}, stateDir?: string): Promise<LocalProcess> {
  const local = await startLocalProcess(['--log-level', 'info'], env, stateDir ? { stateDir } : {});
  cleanups.push(async () => {
    printed.push(local.output());
    await local.kill();
  });
  return local;
}

function expectNothingSecret(values: string[], ...more: string[]): void {
  const all = [...printed, ...more].join('\n');
  expect(all.length).toBeGreaterThan(0);
  for (const v of values) expect(all.includes(v), 'a secret value was printed').toBe(false);
}

describe('secrets in local mode', () => {
  it('nemutator run hands a program the value written by nemutator secrets put, and a new put reaches it as a rewritten file and SIGHUP; nothing secret is printed', async () => {
    const launcher = await buildLauncher();
    const local = await startLocal();
    expect(local.output()).toContain('secrets socket');
    const [v1, v2] = [secretValue(), secretValue()];

    const put1 = await cli(local, ['secrets', 'put', 'secret/app/db', 'password=-'], { stdin: `${v1}\n` });
    expect(put1.code, put1.err).toBe(0);
    expect(put1.out).toContain('secret/app/db: version 1 written (keys: password)');

    const app = run(local, [
      '--env',
      'DB_PASSWORD=vault:secret/app/db#password',
      '--file',
      'db.pass=vault:secret/app/db#password',
      '--rotate-signal',
      'SIGHUP',
      '--launcher',
      launcher,
      '--',
      process.execPath,
      FIXTURE,
      'db.pass',
    ]);
    await until(
      'the program to print the hashes of what it got',
      () => app.out().includes(`env ${sha(v1)}`) && app.out().includes(`file ${sha(v1)} start`),
      20_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; nemutator run printed:\n${app.out()}`);
    });
    const pod = /pod local\/(\S+) \(uid ([0-9a-f-]+)\)/.exec(app.out());
    expect(pod, app.out()).not.toBeNull();
    // The agent identified it as that pod's container, by the kernel: the cgroup is kubelet-shaped.
    const cgroupDir = join(cgroupV2Root(), 'kubepods.slice', 'kubepods-besteffort.slice', `kubepods-besteffort-pod${pod![2]!.replace(/-/g, '_')}.slice`);
    expect(existsSync(cgroupDir)).toBe(true);
    const status = await cli(local, ['secrets', 'status', 'secret/app/db', '-o', 'json']);
    expect(JSON.parse(status.out).holders).toEqual([
      expect.objectContaining({ namespace: 'local', pod: pod![1], container: 'app', path: 'secret/app/db', version: 1, ackedVersion: 1 }),
    ]);

    // A new version from a file: pushed at once, the file rewritten, then SIGHUP.
    const dir = mkdtempSync(join(tmpdir(), 'nemu-put-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'pw'), v2, { mode: 0o600 });
    const put2 = await cli(local, ['secrets', 'put', 'secret/app/db', `password=@${join(dir, 'pw')}`]);
    expect(put2.code, put2.err).toBe(0);
    expect(put2.out).toContain('version 2');
    await until('the rotation to reach the program (file rewritten, SIGHUP)', () => app.out().includes(`file ${sha(v2)} sighup`), 5000);
    await until('the launcher to acknowledge version 2', async () => {
      const s = await cli(local, ['secrets', 'status', 'secret/app/db', '-o', 'json']);
      return JSON.parse(s.out).holders[0]?.ackedVersion === 2;
    });

    // The writes are audited by reference; the audit holds no value.
    const audit = await cli(local, ['audit', '-o', 'json']);
    const writes = (JSON.parse(audit.out) as Array<{ action: string; target: Record<string, string>; outcome: string }>).filter(
      (e) => e.action === 'create secretvalues',
    );
    expect(writes.map((w) => [w.target.secretPath, w.target.version, w.outcome])).toEqual([
      ['secret/app/db', '2', 'succeeded'],
      ['secret/app/db', '1', 'succeeded'],
    ]);

    // SIGTERM to the CLI reaches the program; the pod and its cgroup go with it.
    app.child.kill('SIGTERM');
    expect(await app.exited).toBe(0);
    expect(existsSync(cgroupDir)).toBe(false);
    await until(
      'the agent to forget the pod',
      async () => JSON.parse((await cli(local, ['secrets', 'status', 'secret/app/db', '-o', 'json'])).out).holders.length === 0,
    );
    expectNothingSecret([v1, v2], local.output(), app.out());
  }, 90_000);

  it('values survive a restart of local mode (the embedded store is on disk), and a bad put names the problem without echoing the value', async () => {
    const launcher = await buildLauncher();
    const stateDir = mkdtempSync(join(tmpdir(), 'nemu-state-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const v = secretValue();
    const first = await startLocal({}, stateDir);
    // A mistyped argument may be the value itself: it is not echoed.
    const typo = await cli(first, ['secrets', 'put', 'secret/app/db', v]);
    expect(typo.code).toBe(1);
    expect(typo.err).toContain('NEMU_ERR_BAD_REQUEST');
    expect((await cli(first, ['secrets', 'put', 'secret/app/db', 'password=-'], { stdin: v })).code).toBe(0);
    await first.kill();

    const second = await startLocal({}, stateDir);
    const r = run(second, ['--env', 'DB_PASSWORD=vault:secret/app/db#password', '--launcher', launcher, '--', process.execPath, FIXTURE]);
    await until('the program to get the value written before the restart', () => r.out().includes(`env ${sha(v)}`), 20_000);
    expectNothingSecret([v], second.output(), r.out());
  }, 90_000);

  it('nemutator run refuses to start without root, with NEMU_ERR_RUN_NEEDS_ROOT', async () => {
    const local = await startLocal();
    const r = await cli(local, ['run', '--env', 'X=vault:secret/app/db#password', '--', '/bin/true'], { uid: 65534 });
    expect(r.code).toBe(1);
    expect(r.err).toContain('NEMU_ERR_RUN_NEEDS_ROOT');
    expect(r.err).toContain('sudo');
  }, 60_000);

  it('with VAULT_ADDR, values come from Vault (read with VAULT_TOKEN), rotations come with nemutator secrets rotate, and secrets put says to write to Vault', async () => {
    const launcher = await buildLauncher();
    const vault: VaultDouble = await startVaultDouble({ jwks: { keys: [] } });
    cleanups.push(() => vault.stop());
    const [v1, v2] = [secretValue(), secretValue()];
    vault.put('secret/app/ca', { pem: v1 });
    const local = await startLocal({ VAULT_ADDR: vault.addr, VAULT_TOKEN: vault.rootToken });
    expect(local.output()).toContain(`values from the Vault at ${vault.addr}`);

    const put = await cli(local, ['secrets', 'put', 'secret/app/ca', 'pem=-'], { stdin: v2 });
    expect(put.code).toBe(1);
    expect(put.err).toContain('NEMU_ERR_SECRETS_IN_VAULT');

    const app = run(local, [
      '--file',
      'ca.pem=vault:secret/app/ca#pem',
      '--rotate-signal',
      'SIGHUP',
      '--launcher',
      launcher,
      '--',
      process.execPath,
      FIXTURE,
      'ca.pem',
    ]);
    await until('the program to get the file from Vault', () => app.out().includes(`file ${sha(v1)} start`), 20_000);
    vault.put('secret/app/ca', { pem: v2 });
    const rotate = await cli(local, ['secrets', 'rotate', 'secret/app/ca']);
    expect(rotate.code, rotate.err).toBe(0);
    expect(rotate.out).toContain('1 new version(s), 1 watcher(s) notified');
    await until('the rotation to reach the program', () => app.out().includes(`file ${sha(v2)} sighup`), 5000);
    expectNothingSecret([v1, v2, vault.rootToken], local.output(), app.out());
  }, 90_000);
});
