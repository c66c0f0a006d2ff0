// The real launcher (static Go binary) run as a pod's process in its pod-shaped cgroup: it
// gets its env from the real agent over the socket and execs a program that proves it got
// it by writing a hash. Values are compared by hash and never printed.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { boundMs, medianMs } from '../harness/baseline.ts';
import { buildLauncher } from '../harness/build-native.ts';
import { spawnInCgroup } from '../harness/cgroup.ts';
import { requireTool } from '../harness/tools.ts';
import { until } from '../harness/wait.ts';
import { startWorld, type TestPod, type World } from './world.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const DB = 'launcher-db-' + Math.random().toString(36).slice(2);

let world: World;
let launcher: string;
let web: TestPod;
let dirs: { token: string; secrets: string; out: string };

beforeAll(async () => {
  launcher = await buildLauncher();
  world = await startWorld();
  world.vault.put('secret/app/db', { password: DB });
  web = await world.pod({
    name: 'web-1',
    annotation: {
      v: 1,
      role: 'app',
      containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password' } } },
      files: { 'db.pass': 'vault:secret/app/db#password' },
    },
  });
  dirs = { token: join(world.dir, 'token'), secrets: join(world.dir, 'secrets'), out: join(world.dir, 'out') };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await writeFile(join(dirs.token, 'token'), await web.token());
}, 300_000);
afterAll(async () => {
  await world?.stop();
});

function podEnv(container = 'app'): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NEMUTATOR_SOCKET: world.socketPath,
    NEMUTATOR_TOKEN_FILE: join(dirs.token, 'token'),
    NEMUTATOR_CONTAINER: container,
    NEMUTATOR_SECRETS_DIR: dirs.secrets,
    NEMUTATOR_WAIT: '2s',
  };
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, inCgroup = true): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = inCgroup
    ? spawnInCgroup(web.cg, cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdout!.on('data', (d) => (stdout += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr, stdout })));
}

describe('nemu-exec', () => {
  it('is a static binary', () => {
    const head = readFileSync(launcher).subarray(0, 4);
    expect(head.toString('latin1')).toBe('\x7fELF');
    // A static Go binary has no PT_INTERP: its bytes do not name a dynamic loader.
    expect(readFileSync(launcher).includes('/lib64/ld-linux')).toBe(false);
  });

  it('exec: the program it becomes receives the env from the agent (proved by hash)', async () => {
    const r = await run(launcher, ['--', 'sh', '-c', `printf %s "$DB_PASSWORD" | sha256sum > ${join(dirs.out, 'env.sha')}; echo ok`], podEnv());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
    expect(readFileSync(join(dirs.out, 'env.sha'), 'utf8').split(' ')[0]).toBe(sha(DB));
    expect(sha(readFileSync(join(dirs.secrets, 'db.pass'), 'utf8'))).toBe(sha(DB));
    expect(r.stderr).not.toContain(DB);
    // The launcher acknowledged what it handed over.
    const held = world.secrets.service.status('secret/app/db').find((h) => h.pod === 'web-1' && h.container === 'app');
    expect(held).toMatchObject({ version: 1, ackedVersion: 1 });
  });

  it('copy: copies itself into the shared volume; render: writes the declared files', async () => {
    const bin = join(world.dir, 'bin');
    const c = await run(launcher, ['copy', bin], {}, false);
    expect(c.code, c.stderr).toBe(0);
    expect(sha(readFileSync(join(bin, 'nemu-exec'), 'latin1'))).toBe(sha(readFileSync(launcher, 'latin1')));
    expect(statSync(join(bin, 'nemu-exec')).mode & 0o111).not.toBe(0);
    const secrets2 = join(world.dir, 'secrets2');
    const r = await run(join(bin, 'nemu-exec'), ['render'], { ...podEnv(), NEMUTATOR_SECRETS_DIR: secrets2 });
    expect(r.code, r.stderr).toBe(0);
    expect(sha(readFileSync(join(secrets2, 'db.pass'), 'utf8'))).toBe(sha(DB));
  });

  it('init --bin <dir> --render: what the initContainer runs, copy then render in one command', async () => {
    const bin = join(world.dir, 'bin-init');
    const secrets3 = join(world.dir, 'secrets3');
    const r = await run(launcher, ['init', '--bin', bin, '--render'], { ...podEnv('app'), NEMUTATOR_SECRETS_DIR: secrets3 });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(bin, 'nemu-exec'))).toBe(true);
    expect(sha(readFileSync(join(secrets3, 'db.pass'), 'utf8'))).toBe(sha(DB));
    const bad = await run(launcher, ['init', '--render'], podEnv());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--bin <dir> is required');
  });

  it('needs no root: init as UID 65532 into a 0777 emptyDir, then the app as its own UID 1000 gets env and files', async () => {
    // What a restricted pod does: nemutator-init runs as the init image's nonroot user, the
    // application container as whatever user it chose; the agent's socket is 0666 and tells
    // callers apart by cgroup and token, not by UID.
    const setpriv = requireTool('setpriv', 'util-linux');
    await chmod(world.dir, 0o711); // a node's /run: traversable, the agent's socket dir 0755
    const image = join(world.dir, 'init-image');
    await mkdir(image, { mode: 0o755 });
    await copyFile(launcher, join(image, 'nemu-exec'));
    await chmod(join(image, 'nemu-exec'), 0o755);
    const empty = join(world.dir, 'empty-dir');
    // kubelet makes an emptyDir 0777, and a subPath directory with the volume's mode
    for (const d of [empty, join(empty, 'secrets')]) {
      await mkdir(d);
      await chmod(d, 0o777);
    }
    const asUser = (uid: number, cmd: string, args: string[], env: NodeJS.ProcessEnv) =>
      run('/bin/sh', ['-c', `exec ${setpriv} --reuid=${uid} --regid=${uid} --clear-groups --no-new-privs "$@"`, 'sh', cmd, ...args], env);
    const init = await asUser(65532, join(image, 'nemu-exec'), ['init', '--bin', join(empty, 'bin'), '--render'], {
      ...podEnv('app'),
      NEMUTATOR_SECRETS_DIR: join(empty, 'secrets'),
    });
    expect(init.code, init.stderr).toBe(0);
    expect(statSync(join(empty, 'bin', 'nemu-exec'))).toMatchObject({ uid: 65532 });
    expect(statSync(join(empty, 'bin', 'nemu-exec')).mode & 0o777).toBe(0o755);
    expect(statSync(join(empty, 'secrets', 'db.pass')).mode & 0o777).toBe(0o444);
    const script = 'id -u; printf %s "$DB_PASSWORD" | sha256sum; sha256sum < "$NEMUTATOR_SECRETS_DIR/db.pass"';
    const app = await asUser(1000, join(empty, 'bin', 'nemu-exec'), ['--', 'sh', '-c', script], {
      ...podEnv('app'),
      NEMUTATOR_SECRETS_DIR: join(empty, 'secrets'),
    });
    expect(app.code, app.stderr).toBe(0);
    const [uid, envHash, fileHash] = app.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    expect({ uid, envHash, fileHash }).toEqual({ uid: '1000', envHash: sha(DB), fileHash: sha(DB) });
    expect(app.stderr + app.stdout).not.toContain(DB);
  });

  it('fails clearly, without a value, when refused or misconfigured', async () => {
    const noContainer = await run(launcher, ['--', 'true'], { ...podEnv(), NEMUTATOR_CONTAINER: '' });
    expect(noContainer.code).toBe(2);
    expect(noContainer.stderr).toContain('NEMUTATOR_CONTAINER is not set');
    const outside = await run(launcher, ['--', 'true'], podEnv(), false);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('NEMU_ERR_SECRETS_NOT_A_POD');
    const noSocket = await run(launcher, ['--', 'true'], { ...podEnv(), NEMUTATOR_SOCKET: join(world.dir, 'nope.sock'), NEMUTATOR_WAIT: '300ms' });
    expect(noSocket.code).toBe(1);
    expect(noSocket.stderr).toContain('NEMU_ERR_LAUNCHER_SOCKET');
    const missing = await run(launcher, ['--', 'no-such-program-here'], podEnv());
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('not found in PATH');
    for (const r of [noContainer, outside, noSocket, missing]) expect(r.stderr + r.stdout).not.toContain(DB);
  });

  it('rotation: the watcher replaces the file, signals the program and acknowledges, after a forced rotation', async () => {
    const hupDir = join(dirs.out, 'hup');
    await mkdir(hupDir, { recursive: true });
    const pod = world.kube.get('pods', 'shop', 'web-1')!;
    world.kube.put({
      ...pod,
      metadata: {
        ...pod.metadata,
        annotations: {
          'nemutator.io/secrets': JSON.stringify({
            v: 1,
            role: 'app',
            containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password' } } },
            files: { 'db.pass': 'vault:secret/app/db#password' },
            rotateSignal: 'SIGHUP',
          }),
        },
      },
    } as never);
    // The agent answers with the new annotation's signal once its informer has the update.
    const probe = await web.client();
    const token = await web.token();
    await until(
      'the agent sees rotateSignal SIGHUP',
      async () => ((await probe.request({ path: '/v1/secrets', token, container: 'app' })).body as { rotateSignal?: string }).rotateSignal === 'SIGHUP',
    );
    probe.kill();
    const baseline = await medianMs(() => world.secrets.service.rotate('secret/app/db'));
    const watchersBefore = world.secrets.service.watcherCount();
    const script = `trap 'sha256sum < ${join(dirs.secrets, 'db.pass')} > ${hupDir}/seen' HUP; while :; do sleep 0.05; done`;
    const child = spawnInCgroup(web.cg, launcher, ['--', 'sh', '-c', script], { env: podEnv(), stdio: 'ignore' });
    try {
      await until('the launcher fetched and its watcher connected', () => world.secrets.service.watcherCount() > watchersBefore, 15_000);
      const NEW = 'rotated-' + Math.random().toString(36).slice(2);
      const version = world.vault.put('secret/app/db', { password: NEW });
      const bound = boundMs(2000, baseline);
      const t0 = Date.now();
      const result = await world.secrets.handlers.rotate({ rotate: { path: 'secret/app/db' } });
      expect(result.rotate).toMatchObject({ newVersions: 1 });
      expect(result.rotate!.watchersNotified).toBeGreaterThanOrEqual(1);
      const seenFile = join(hupDir, 'seen');
      await until(
        `the program saw the new file after SIGHUP (2 s idle, bound ${bound} ms)`,
        () => existsSync(seenFile) && readFileSync(seenFile, 'utf8').split(' ')[0] === sha(NEW),
        Math.max(0, bound - (Date.now() - t0)),
      );
      expect(sha(readFileSync(join(dirs.secrets, 'db.pass'), 'utf8'))).toBe(sha(NEW));
      const holder = await until(
        'the launcher acknowledged the new version',
        async () => {
          const holders = (await world.secrets.handlers.secretStatus({ secretStatus: { path: 'secret/app/db' } })).secretStatus!.holders!;
          return holders.find((h) => h.pod === 'web-1' && h.container === 'app' && h.ackedVersion === version);
        },
        bound,
      );
      expect(holder).toMatchObject({ version, ackedVersion: version });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
