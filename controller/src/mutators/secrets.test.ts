import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { diff } from '../admission/patch.ts';
import { chainKeys, DEFAULT_CHAIN, runChain } from './chain.ts';
import { createSecretsMutator, parseEntrypoint, parseSecretsRecord, SECRETS_ANNOTATION, type SecretsRecord, withSecretsOptions } from './secrets.ts';
import type { KubeObject, WorkloadKind } from './types.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function run(object: KubeObject, dict: Record<string, string> = {}, kind: WorkloadKind = 'Pod', skip: string[] = []) {
  const ctx = { kind, namespace: 'web' };
  const keys = chainKeys(DEFAULT_CHAIN, object, ctx);
  const dictionary = new Map(Object.entries(dict).filter(([k]) => keys.includes(k)));
  return runChain(DEFAULT_CHAIN, object, { ...ctx, operation: 'CREATE', dictionary, recommendations: [] }, new Set(skip as never[]));
}

function pod(spec: Obj, annotations: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'web', annotations }, spec };
}

const record = (o: KubeObject, kind: WorkloadKind = 'Pod'): SecretsRecord => {
  const meta = kind === 'Pod' ? (o as Obj).metadata : (o as Obj).spec.template.metadata;
  return parseSecretsRecord(meta.annotations[SECRETS_ANNOTATION])!;
};

const DB = 'vault:secret/app/db#password';
const API = 'vault:secret/app/api#token';

describe('the secrets mutator', () => {
  const app = () =>
    pod(
      {
        serviceAccountName: 'shop',
        containers: [
          {
            name: 'app',
            image: 'busybox',
            command: ['/bin/server'],
            args: ['--port', '80'],
            env: [
              { name: 'DB_PASSWORD', value: DB },
              { name: 'PLAIN', value: 'x' },
              { name: 'API_TOKEN', value: 'nemu_env_api' },
            ],
          },
          { name: 'sidecar', image: 'envoy', command: ['envoy'] },
        ],
      },
      { 'nemutator.io/secret-file.db.pem': 'vault:secret/app/tls#key', 'nemutator.io/rotate-signal': 'hup' },
    );

  it('keeps only references in the stored spec: vault: env removed, recorded in the annotation', () => {
    const r = run(app(), { nemu_env_api: API });
    expect(r.applied).toContain('secrets');
    expect(r.warnings).toEqual([]);
    const text = JSON.stringify(r.object);
    expect(text).not.toMatch(/"value":"vault:/);
    expect(record(r.object)).toEqual({
      v: 1,
      role: 'shop',
      containers: { app: { env: { DB_PASSWORD: DB, API_TOKEN: API } } },
      files: { 'db.pem': 'vault:secret/app/tls#key' },
      rotateSignal: 'SIGHUP',
    });
  });

  it('adds the socket, launcher and token volumes, the init container, and wraps the referencing container', () => {
    const spec = run(app(), { nemu_env_api: API }).object.spec as Obj;
    expect(spec.volumes).toEqual([
      { name: 'nemutator-socket', csi: { driver: 'csi.nemutator.io', readOnly: true } },
      { name: 'nemutator-bin', emptyDir: { medium: 'Memory' } },
      { name: 'nemutator-token', projected: { sources: [{ serviceAccountToken: { audience: 'vault', expirationSeconds: 3600, path: 'token' } }] } },
    ]);
    expect(spec.initContainers).toHaveLength(1);
    expect(spec.initContainers[0]).toMatchObject({
      name: 'nemutator-init',
      image: 'ghcr.io/nemutator/init:0.1.0',
      command: ['/nemu-exec', 'init', '--bin', '/nemutator/bin', '--render'],
    });
    expect(spec.initContainers[0].volumeMounts.map((m: Obj) => m.name)).toEqual(['nemutator-socket', 'nemutator-bin', 'nemutator-bin', 'nemutator-token']);
    // everything Pod Security's restricted level asks of a container, and small resources
    expect(spec.initContainers[0].securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec.initContainers[0].resources).toEqual({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } });
    const [appC, sidecar] = spec.containers;
    expect(appC.command).toEqual(['/nemutator/bin/nemu-exec', '--', '/bin/server', '--port', '80']);
    expect(appC.args).toBeUndefined();
    expect(appC.env).toEqual([
      { name: 'PLAIN', value: 'x' },
      { name: 'NEMUTATOR_SOCKET', value: '/nemutator/socket/agent.sock' },
      { name: 'NEMUTATOR_TOKEN_FILE', value: '/nemutator/token/token' },
      { name: 'NEMUTATOR_CONTAINER', value: 'app' },
      { name: 'NEMUTATOR_SECRETS_DIR', value: '/nemutator/secrets' },
    ]);
    expect(appC.volumeMounts).toEqual([
      { name: 'nemutator-socket', mountPath: '/nemutator/socket', readOnly: true },
      { name: 'nemutator-bin', mountPath: '/nemutator/bin', readOnly: true },
      { name: 'nemutator-bin', mountPath: '/nemutator/secrets', subPath: 'secrets' },
      { name: 'nemutator-token', mountPath: '/nemutator/token', readOnly: true },
    ]);
    // a container without references sees the files, and keeps its argv
    expect(sidecar.command).toEqual(['envoy']);
    expect(sidecar.volumeMounts).toEqual([{ name: 'nemutator-bin', mountPath: '/nemutator/secrets', subPath: 'secrets', readOnly: true }]);
  });

  it('uses nemutator.io/entrypoint for a container without command, and the role and audience annotations', () => {
    const r = run(
      pod(
        { containers: [{ name: 'a', image: 'x', args: ['serve'], env: [{ name: 'T', value: API }] }] },
        { 'nemutator.io/entrypoint': '["/docker-entrypoint.sh"]', 'nemutator.io/vault-role': 'reader', 'nemutator.io/vault-audience': 'vault.example.com' },
      ),
    );
    const spec = r.object.spec as Obj;
    expect(spec.containers[0].command).toEqual(['/nemutator/bin/nemu-exec', '--', '/docker-entrypoint.sh', 'serve']);
    expect(spec.volumes[2].projected.sources[0].serviceAccountToken.audience).toBe('vault.example.com');
    expect(record(r.object).role).toBe('reader');
    expect(parseEntrypoint('/bin/sh -c run')).toEqual(['/bin/sh', '-c', 'run']);
    expect(record(run(pod({ containers: [{ name: 'a', command: ['x'], env: [{ name: 'T', value: API }] }] })).object).role).toBe('default');
  });

  it('gives a container without command or entrypoint the files only, and says why', () => {
    const r = run(pod({ containers: [{ name: 'web', image: 'nginx', env: [{ name: 'T', value: API }] }] }, { 'nemutator.io/secret-file.token': API }));
    const c = (r.object.spec as Obj).containers[0];
    expect(c.command).toBeUndefined();
    expect(c.env).toBeUndefined();
    expect(c.volumeMounts).toEqual([{ name: 'nemutator-bin', mountPath: '/nemutator/secrets', subPath: 'secrets', readOnly: true }]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(
      /^nemutator secrets: container web has no command .* the launcher cannot know the image's entrypoint, so its vault: env \(T\) is not injected and it gets the secret files only/,
    );
    expect(record(r.object).containers).toEqual({ web: { env: { T: API } } });
  });

  it('reports malformed references without echoing them and ignores bad file names', () => {
    const r = run(
      pod(
        {
          containers: [
            {
              name: 'a',
              command: ['x'],
              env: [
                { name: 'BAD', value: 'vault:hunter2' },
                { name: 'OK', value: DB },
              ],
            },
          ],
        },
        { 'nemutator.io/secret-file.../x': DB, 'nemutator.io/rotate-signal': 'SIGKILL' },
      ),
    );
    expect(r.warnings.join('\n')).not.toContain('hunter2');
    expect(r.warnings.join('\n')).toContain('env BAD of container a is not a reference');
    expect(r.warnings.join('\n')).toContain('is not a file name');
    expect(r.warnings.join('\n')).toContain('SIGKILL');
    expect(JSON.stringify(r.object)).not.toContain('hunter2');
    expect(record(r.object)).toEqual({ v: 1, role: 'default', containers: { a: { env: { OK: DB } } }, files: {} });
  });

  it('resolves a nemu_env_ placeholder to a reference even when env is skipped', () => {
    const r = run(pod({ containers: [{ name: 'a', command: ['x'], env: [{ name: 'T', value: 'nemu_env_api' }] }] }), { nemu_env_api: API }, 'Pod', ['env']);
    expect(record(r.object).containers).toEqual({ a: { env: { T: API } } });
    expect(JSON.stringify(r.object.spec)).not.toContain('nemu_env_api');
  });

  it('leaves a pod without references alone', () => {
    const p = pod({ containers: [{ name: 'a', command: ['x'], env: [{ name: 'E', value: 'plain' }] }] });
    expect(run(p).object).toBe(p);
  });

  it('acts on a Deployment’s pod template, and the pods it creates come through unchanged', () => {
    const d: KubeObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'web' },
      spec: {
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' }, annotations: { 'nemutator.io/secret-file.cfg': DB } },
          spec: { containers: [{ name: 'a', command: ['run'], env: [{ name: 'P', value: DB }] }] },
        },
      },
    };
    const r = run(d, {}, 'Deployment');
    const tmpl = (r.object.spec as Obj).template;
    expect(record(r.object, 'Deployment')).toEqual({ v: 1, role: 'default', containers: { a: { env: { P: DB } } }, files: { cfg: DB } });
    expect(tmpl.spec.containers[0].command).toEqual(['/nemutator/bin/nemu-exec', '--', 'run']);
    expect(tmpl.spec.initContainers[0].name).toBe('nemutator-init');
    expect((r.object.metadata as Obj).annotations).toBeUndefined();
    const created = { apiVersion: 'v1', kind: 'Pod', metadata: { ...tmpl.metadata, generateName: 'web-', namespace: 'web' }, spec: tmpl.spec } as KubeObject;
    expect(run(created).object).toBe(created);
    expect(run(r.object, {}, 'Deployment').object).toBe(r.object);
  });

  it('takes its image, audience and socket directory from configuration', () => {
    const options = {
      initImage: 'registry.local/init:9',
      vaultAudience: 'va',
      socketHostDir: '/var/run/nemu',
      secretsSocketVolume: 'hostPath' as const,
      initCpuRequest: '5m',
      initMemoryRequest: '8Mi',
      initCpuLimit: '50m',
      initMemoryLimit: '32Mi',
    };
    const chain = withSecretsOptions(DEFAULT_CHAIN, options);
    const ctx = { kind: 'Pod' as const, namespace: 'web', operation: 'CREATE' as const, dictionary: new Map(), recommendations: [] };
    const p = pod({ containers: [{ name: 'a', command: ['x'], env: [{ name: 'T', value: DB }] }] });
    const mutated = runChain(chain, p, ctx).object;
    const spec = mutated.spec as Obj;
    expect(spec.initContainers[0].image).toBe('registry.local/init:9');
    expect(spec.volumes[0]).toEqual({ name: 'nemutator-socket', hostPath: { path: '/var/run/nemu', type: 'DirectoryOrCreate' } });
    expect(spec.volumes[2].projected.sources[0].serviceAccountToken.audience).toBe('va');
    expect(spec.initContainers[0].resources).toEqual({ requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: '50m', memory: '32Mi' } });
    // configuration back to csi: the stored pod's hostPath source is replaced, not joined
    const back = runChain(withSecretsOptions(DEFAULT_CHAIN, { ...options, secretsSocketVolume: 'csi' }), mutated, ctx);
    expect((back.object.spec as Obj).volumes[0]).toEqual({ name: 'nemutator-socket', csi: { driver: 'csi.nemutator.io', readOnly: true } });
    expect(diff(mutated, back.object).forward).toEqual(expect.arrayContaining([expect.objectContaining({ op: 'remove', path: '/spec/volumes/0/hostPath' })]));
  });

  it('keeps a stored init container whose securityContext the API server re-ordered (no patch)', () => {
    const first = run(app(), { nemu_env_api: API }).object;
    const stored = structuredClone(first) as Obj;
    const init = stored.spec.initContainers[0];
    // Go field order, as kube-apiserver serializes it
    init.securityContext = {
      capabilities: { drop: ['ALL'] },
      runAsUser: 65532,
      runAsGroup: 65532,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      seccompProfile: { type: 'RuntimeDefault' },
    };
    init.resources = { limits: { memory: '64Mi', cpu: '100m' }, requests: { memory: '16Mi', cpu: '10m' } };
    expect(diff(stored as KubeObject, run(stored as KubeObject, { nemu_env_api: API }).object).forward).toEqual([]);
    // a tampered one is put back
    init.securityContext.allowPrivilegeEscalation = true;
    expect((run(stored as KubeObject, { nemu_env_api: API }).object.spec as Obj).initContainers[0].securityContext.allowPrivilegeEscalation).toBe(false);
  });

  it('keeps the API server’s defaulted fields (an UPDATE of a stored Deployment yields no patch)', () => {
    const m = createSecretsMutator();
    const p = pod({ containers: [{ name: 'a', command: ['x'], env: [{ name: 'T', value: DB }] }] });
    const ctx = { kind: 'Pod' as const, namespace: 'web', operation: 'CREATE' as const, dictionary: new Map(), recommendations: [], warn: () => {} };
    const once = structuredClone(m.mutate(p, ctx)) as Obj;
    once.spec.volumes[2].projected.defaultMode = 420;
    once.spec.volumes[1].emptyDir.sizeLimit = '64Mi';
    once.spec.initContainers[0].imagePullPolicy = 'IfNotPresent';
    once.spec.initContainers[0].terminationMessagePath = '/dev/termination-log';
    expect(m.mutate(once, ctx)).toBe(once);
  });
});

// Generated pods: references in env (direct and through nemu_env_), files, commands or not,
// entrypoints, roles, signals — running the chain on its output must change nothing.
const envValue = fc.constantFrom(DB, API, 'nemu_env_api', 'nemu_env_plain', 'plain', 'vault:broken', 'nemu_env_missing');
const generatedContainer = fc.record(
  {
    name: fc.constantFrom('a', 'b', 'c'),
    image: fc.constantFrom('busybox', 'nginx:1'),
    command: fc.constantFrom(['/bin/app'], ['sh', '-c', 'run'], []),
    args: fc.constantFrom(['--x'], []),
    env: fc.array(fc.record({ name: fc.constantFrom('A', 'B', 'NEMUTATOR_CONTAINER'), value: envValue }), { maxLength: 3 }),
  },
  { requiredKeys: ['name', 'image'] },
);
const generatedAnnotations = fc.dictionary(
  fc.constantFrom(
    'nemutator.io/secret-file.db',
    'nemutator.io/secret-file.api.json',
    'nemutator.io/rotate-signal',
    'nemutator.io/entrypoint',
    'nemutator.io/entrypoint.b',
    'nemutator.io/vault-role',
    'note',
  ),
  fc.constantFrom(DB, API, 'SIGUSR1', '["/entry"]', 'reader', 'x'),
  { maxKeys: 4 },
);
const generated = fc
  .record({
    annotations: generatedAnnotations,
    containers: fc.uniqueArray(generatedContainer, { minLength: 1, maxLength: 3, selector: (c) => c.name }),
    sa: fc.constantFrom(undefined, 'shop'),
  })
  .map(({ annotations, containers, sa }) => pod({ containers, ...(sa ? { serviceAccountName: sa } : {}) }, annotations));

describe('properties of the secrets mutator', () => {
  const dict = { nemu_env_api: API, nemu_env_plain: 'not-a-secret' };
  it('is idempotent: the chain on its own output yields no patch', () => {
    fc.assert(
      fc.property(generated, (p) => {
        const before = structuredClone(p);
        const first = run(p, dict).object;
        expect(p).toEqual(before); // the input is never written to
        const second = run(first, dict);
        expect(diff(first, second.object).forward).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it('never leaves a vault: value in a container env, and records every valid reference', () => {
    fc.assert(
      fc.property(generated, (p) => {
        const out = run(p, dict).object as Obj;
        for (const c of out.spec.containers) for (const e of c.env ?? []) expect(String(e.value)).not.toMatch(/^vault:/);
        const rec = parseSecretsRecord(out.metadata.annotations?.[SECRETS_ANNOTATION]);
        const refs = (p as Obj).spec.containers.flatMap((c: Obj) =>
          (c.env ?? []).filter((e: Obj) => e.value === DB || e.value === API || e.value === 'nemu_env_api').map((e: Obj) => [c.name, e.name]),
        );
        for (const [c, name] of refs) expect(rec?.containers[c]?.env[name]).toMatch(/^vault:secret\/app\//);
      }),
      { numRuns: 200 },
    );
  });
});
