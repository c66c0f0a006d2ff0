// The CSI node plugin as kubelet uses it, with real parts: a gRPC client on the plugin's unix
// socket, real bind mounts (root), the agent's real secrets socket with the kube and Vault
// doubles behind it, and a process in a pod-shaped cgroup reading its secret through the
// published target. Mount state is read from /proc/self/mountinfo, as the plugin reads it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { locate, mountsAt, readMountInfo } from '#agent/csi/mountinfo.js';
import { type CsiServer, startCsiServer } from '#agent/csi/server.js';
import { createLogger } from '#common/log.js';
import { VERSION } from '#common/version.js';

import { type CsiClient, csiClient, kubeletPublish } from '../harness/kubelet.ts';
import { requireTool } from '../harness/tools.ts';
import { NODE, startWorld, type TestPod, type World } from '../secrets-agent/world.ts';

const sha = (s: unknown) => createHash('sha256').update(String(s)).digest('hex');
const DB = 'S3cr3t-csi-' + Math.random().toString(36).slice(2);
const annotation = { v: 1, role: 'app', containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password' } } }, files: {} };

let world: World;
let kubeletDir: string;
let plugin: CsiServer;
let client: CsiClient;
let registry: Registry;
const logs: string[] = [];
let seq = 0;

const mountsOn = async (path: string) => mountsAt(await readMountInfo(), path);
const podRef = (p: TestPod) => ({ uid: p.uid, name: p.name, namespace: p.namespace, serviceAccount: 'app' });
/** A pod object in the kube double (with cgroup), fresh for each test that publishes. */
const newPod = () => world.pod({ name: `web-${++seq}`, annotation });

beforeAll(async () => {
  requireTool('mount', 'mount');
  requireTool('umount', 'mount');
  world = await startWorld();
  world.vault.put('secret/app/db', { password: DB });
  kubeletDir = await mkdtemp(join(tmpdir(), 'nemu-kubelet-'));
  registry = new Registry();
  const log = createLogger({ level: 'info', destination: new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) });
  plugin = await startCsiServer({
    socketPath: join(world.dir, 'csi', 'csi.sock'),
    nodeName: NODE,
    secretsSocketPath: world.socketPath,
    kubeletDir,
    log,
    registry,
  });
  client = csiClient(plugin.socketPath);
});

afterAll(async () => {
  client?.close();
  await plugin?.stop();
  // Whatever a failed test left mounted under the fake kubelet directory.
  for (const m of (await readMountInfo()).filter((e) => kubeletDir && e.mountPoint.startsWith(kubeletDir)).reverse()) {
    execFileSync('umount', ['-l', m.mountPoint]);
  }
  if (kubeletDir) await rm(kubeletDir, { recursive: true, force: true });
  await world?.stop();
});

describe('Identity', () => {
  it('names the driver and its version, offers no controller, and is ready once the secrets socket exists', async () => {
    expect(await client.call('identity', 'GetPluginInfo', {})).toEqual({
      ok: true,
      value: { name: 'csi.nemutator.io', vendor_version: VERSION, manifest: {} },
    });
    expect(await client.call('identity', 'GetPluginCapabilities', {})).toEqual({ ok: true, value: { capabilities: [] } });
    expect(await client.call('identity', 'Probe', {})).toEqual({ ok: true, value: { ready: { value: true } } });
  });

  it('reports not ready (still a success) while the agent has no secrets socket', async () => {
    const other = await startCsiServer({
      socketPath: join(world.dir, 'csi2', 'csi.sock'),
      nodeName: NODE,
      secretsSocketPath: join(world.dir, 'none', 'agent.sock'),
      kubeletDir,
      log: createLogger({ level: 'silent' }),
      registry: new Registry(),
    });
    const c = csiClient(other.socketPath);
    try {
      expect(await c.call('identity', 'Probe', {})).toEqual({ ok: true, value: { ready: { value: false } } });
    } finally {
      c.close();
      await other.stop();
    }
  });
});

describe('Node: info and capabilities', () => {
  it("gives the agent's node name as node_id and no capabilities (so kubelet neither stages nor asks for stats)", async () => {
    expect(await client.call('node', 'NodeGetInfo', {})).toMatchObject({ ok: true, value: { node_id: NODE, max_volumes_per_node: '0' } });
    expect(await client.call('node', 'NodeGetCapabilities', {})).toEqual({ ok: true, value: { capabilities: [] } });
  });

  it('answers UNIMPLEMENTED for what a node-only ephemeral driver does not do', async () => {
    expect(await client.call('node', 'NodeStageVolume', { volume_id: 'v' })).toMatchObject({ ok: false, code: status.UNIMPLEMENTED });
    expect(await client.call('controller', 'CreateVolume', { name: 'v' })).toMatchObject({ ok: false, code: status.UNIMPLEMENTED });
  });
});

describe('NodePublishVolume / NodeUnpublishVolume', () => {
  it("publishes the agent's socket read-only; a process in the pod reads its secret through the target; unpublish leaves nothing", async () => {
    const pod = await newPod();
    const req = await kubeletPublish(kubeletDir, podRef(pod));
    const target = req.target_path;
    expect(await client.call('node', 'NodePublishVolume', req)).toEqual({ ok: true, value: {} });

    expect((await lstat(join(target, 'agent.sock'))).isSocket()).toBe(true);
    const entries = await readMountInfo();
    const [mounted, ...more] = mountsAt(entries, target);
    expect(more).toEqual([]);
    expect(mounted!.options).toContain('ro');
    const source = locate(entries, join(world.dir, 'run'))!;
    expect([mounted!.device, mounted!.root]).toEqual([source.device, source.root]);
    await expect(writeFile(join(target, 'planted'), 'x')).rejects.toMatchObject({ code: 'EROFS' });

    // In a pod the runtime mounts the target at a short path in the container; here a short
    // symlink stands in for it, because kubelet's target path plus /agent.sock is longer than
    // the 108 bytes a unix socket address may have. The connection still goes through the mount.
    const inPod = join(tmpdir(), `nemu-pod-${seq}-${process.pid}`);
    await symlink(target, inPod);
    const c = await pod.client(join(inPod, 'agent.sock'));
    const r = await c.request({ path: '/v1/secrets', token: await pod.token(), container: 'app' });
    expect(r.status).toBe(200);
    expect(sha((r.body as { env: Record<string, { value: string }> }).env.DB_PASSWORD!.value)).toBe(sha(DB));
    c.kill();
    await unlink(inPod);

    const published = logs.find((l) => l.includes('"msg":"csi publish"') && l.includes(pod.uid));
    expect(JSON.parse(published!)).toMatchObject({
      outcome: 'mounted',
      volumeId: req.volume_id,
      target,
      pod: { name: pod.name, namespace: 'shop', uid: pod.uid, serviceAccount: 'app' },
    });

    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: target })).toEqual({ ok: true, value: {} });
    expect(await mountsOn(target)).toEqual([]);
    expect(existsSync(target)).toBe(false);
    expect(logs.some((l) => l.includes('"msg":"csi unpublish"') && l.includes('"outcome":"unmounted"') && l.includes(pod.uid))).toBe(true);
    expect(await registry.metrics()).toMatch(/nemutator_agent_csi_operations_total\{operation="NodePublishVolume",result="OK"\} [1-9]/);
  });

  it('is idempotent: a repeated publish stacks nothing, a repeated unpublish succeeds, and the cycle repeats', async () => {
    const pod = await newPod();
    const req = await kubeletPublish(kubeletDir, podRef(pod));
    const target = req.target_path;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) expect(await client.call('node', 'NodePublishVolume', req)).toEqual({ ok: true, value: {} });
      expect(await mountsOn(target)).toHaveLength(1);
      expect((await lstat(join(target, 'agent.sock'))).isSocket()).toBe(true);
      for (let i = 0; i < 2; i++)
        expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: target })).toEqual({ ok: true, value: {} });
      expect(await mountsOn(target)).toEqual([]);
      expect(existsSync(target)).toBe(false);
    }
  });

  it('serializes concurrent publishes of one target (kubelet retrying a slow call): one mount', async () => {
    const pod = await newPod();
    const req = await kubeletPublish(kubeletDir, podRef(pod));
    const answers = await Promise.all(Array.from({ length: 4 }, () => client.call('node', 'NodePublishVolume', req)));
    expect(answers.every((a) => a.ok)).toBe(true);
    expect(await mountsOn(req.target_path)).toHaveLength(1);
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path })).toMatchObject({ ok: true });
  });

  it('finishes a publish interrupted between the bind and the read-only remount', async () => {
    const pod = await newPod();
    const req = await kubeletPublish(kubeletDir, podRef(pod));
    await mkdir(req.target_path);
    execFileSync('mount', ['--bind', join(world.dir, 'run'), req.target_path]);
    expect((await mountsOn(req.target_path))[0]!.options).toContain('rw');
    expect(await client.call('node', 'NodePublishVolume', req)).toEqual({ ok: true, value: {} });
    const after = await mountsOn(req.target_path);
    expect(after).toHaveLength(1);
    expect(after[0]!.options).toContain('ro');
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path })).toMatchObject({ ok: true });
    expect(await mountsOn(req.target_path)).toEqual([]);
  });

  it('refuses with ALREADY_EXISTS a target that something else is mounted on, and leaves it alone', async () => {
    const pod = await newPod();
    const req = await kubeletPublish(kubeletDir, podRef(pod));
    const elsewhere = await mkdtemp(join(tmpdir(), 'nemu-other-'));
    await mkdir(req.target_path);
    execFileSync('mount', ['--bind', elsewhere, req.target_path]);
    try {
      const r = await client.call('node', 'NodePublishVolume', req);
      expect(r).toMatchObject({ ok: false, code: status.ALREADY_EXISTS });
      expect((r as { details: string }).details).toMatch(/^NEMU_ERR_CSI_TARGET_BUSY: target_path .* is already mounted from/);
      expect(await mountsOn(req.target_path)).toHaveLength(1);
    } finally {
      execFileSync('umount', [req.target_path]);
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('unpublish of a target never published (or already gone) is OK', async () => {
    const target = join(kubeletDir, 'pods', 'no-such-pod', 'volumes', 'kubernetes.io~csi', 'v', 'mount');
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: 'csi-x', target_path: target })).toEqual({ ok: true, value: {} });
    await mkdir(target, { recursive: true });
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: 'csi-x', target_path: target })).toEqual({ ok: true, value: {} });
    expect(existsSync(target)).toBe(false);
  });
});

describe('refusals: the status codes of the CSI spec', () => {
  const invalid = async (req: Record<string, unknown>, why: RegExp, target?: string) => {
    const r = await client.call('node', 'NodePublishVolume', req);
    expect(r).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect((r as { details: string }).details).toMatch(/^NEMU_ERR_CSI_BAD_REQUEST: /);
    expect((r as { details: string }).details).toMatch(why);
    if (target) {
      expect(await mountsOn(target)).toEqual([]);
      expect(existsSync(target)).toBe(false);
    }
  };

  it('refuses a volume that is not an ephemeral inline one (a PersistentVolume, or no podInfoOnMount)', async () => {
    const req = await kubeletPublish(kubeletDir, { uid: 'f0e1d2c3-0000-4000-8000-000000000001', name: 'pv-user', namespace: 'shop' });
    const ctx = req.volume_context as Record<string, string>;
    await invalid(
      { ...req, volume_context: { ...ctx, 'csi.storage.k8s.io/ephemeral': 'false' } },
      /only ephemeral inline volumes .* is "false"/,
      req.target_path,
    );
    const { ['csi.storage.k8s.io/ephemeral']: _, ...withoutFlag } = ctx;
    await invalid({ ...req, volume_context: withoutFlag }, /is missing/, req.target_path);
    await invalid({ ...req, volume_context: {} }, /podInfoOnMount/, req.target_path);
  });

  it('refuses a read-write volume', async () => {
    const req = await kubeletPublish(kubeletDir, { uid: 'f0e1d2c3-0000-4000-8000-000000000002', name: 'rw', namespace: 'shop' });
    await invalid({ ...req, readonly: false }, /readOnly: true/, req.target_path);
  });

  it('refuses missing required fields, a block volume, and targets outside kubelet pods directory', async () => {
    const req = await kubeletPublish(kubeletDir, { uid: 'f0e1d2c3-0000-4000-8000-000000000003', name: 'bad', namespace: 'shop' });
    await invalid({ ...req, volume_id: '' }, /volume_id is required/, req.target_path);
    await invalid({ ...req, target_path: '' }, /target_path is required/);
    await invalid({ ...req, volume_capability: null }, /volume_capability is required/, req.target_path);
    await invalid({ ...req, volume_capability: { mount: {} } }, /access_mode is required/, req.target_path);
    await invalid({ ...req, volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } } }, /access type mount/, req.target_path);
    await invalid({ ...req, target_path: 'relative/mount' }, /absolute path/);
    await invalid({ ...req, target_path: '/etc/nemutator-test' }, /not under kubelet's pods directory/);
    await invalid({ ...req, target_path: join(kubeletDir, 'pods', '..', 'escape') }, /not under kubelet's pods directory/);
    expect(existsSync('/etc/nemutator-test')).toBe(false);
    expect(existsSync(join(kubeletDir, 'escape'))).toBe(false);
  });

  it('refuses a target that a symbolic link under the pods directory leads outside it: nothing is created, mounted or removed there', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'nemu-outside-'));
    try {
      const req = await kubeletPublish(kubeletDir, { uid: 'f0e1d2c3-0000-4000-8000-000000000004', name: 'link', namespace: 'shop' });
      // …/pods/<uid>/volumes/kubernetes.io~csi → a directory outside kubelet's
      const csiDir = dirname(dirname(req.target_path));
      await rm(csiDir, { recursive: true, force: true });
      await symlink(outside, csiDir);
      await invalid(req, /symbolic link, outside kubelet's pods directory/);
      expect(await readdir(outside)).toEqual([]);
      // an existing directory behind the link: not mounted on, and not removed by an unpublish
      await mkdir(join(outside, basename(dirname(req.target_path)), 'mount'), { recursive: true });
      await invalid(req, /symbolic link, outside kubelet's pods directory/);
      const r = await client.call('node', 'NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
      expect(r).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
      expect(existsSync(join(outside, basename(dirname(req.target_path)), 'mount'))).toBe(true);
      expect((await readMountInfo()).filter((e) => e.mountPoint.startsWith(outside))).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('refuses an unpublish without volume_id or target_path', async () => {
    expect(await client.call('node', 'NodeUnpublishVolume', { target_path: join(kubeletDir, 'pods', 'x', 'mount') })).toMatchObject({
      ok: false,
      code: status.INVALID_ARGUMENT,
    });
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: 'csi-x' })).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect(await client.call('node', 'NodeUnpublishVolume', { volume_id: 'csi-x', target_path: '/etc' })).toMatchObject({
      ok: false,
      code: status.INVALID_ARGUMENT,
    });
  });

  it('answers garbage bytes with an error status and keeps serving', async () => {
    const r = await client.raw('/csi.v1.Node/NodePublishVolume', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x42]));
    expect(r.ok).toBe(false);
    expect(r.code).not.toBe(status.OK);
    expect(await client.call('identity', 'GetPluginInfo', {})).toMatchObject({ ok: true });
    expect(await client.call('node', 'NodePublishVolume', {})).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect(await registry.metrics()).toMatch(/nemutator_agent_csi_operations_total\{operation="NodePublishVolume",result="INVALID_ARGUMENT"\} [1-9]/);
  });
});

describe('the socket', () => {
  it('is reachable by root only (kubelet and the registrar)', async () => {
    expect((await lstat(plugin.socketPath)).mode & 0o777).toBe(0o600);
    expect(await readFile('/proc/self/status', 'utf8')).toMatch(/^Uid:\s+0\s/m);
  });
});
