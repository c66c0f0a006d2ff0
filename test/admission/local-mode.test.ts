// Local mode end to end, as a user does it: `nemutator dict set` a placeholder, then
// `curl -k https://127.0.0.1:<port>/mutate -d @review.json`, and read the mutation log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { LocalMode } from '#local/main.js';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';
import { insecureAgent, post as postHttps } from './https.ts';

let t: TestLocal;
let local: LocalMode;
const cli = (...args: string[]) => t.cli(...args);

const insecure = insecureAgent();
const post = (url: string, body: string) => postHttps(url, body, insecure);

beforeAll(async () => {
  t = await startTestLocal({ reportInterval: 10_000 });
  local = t.local;
});
afterAll(async () => {
  insecure.destroy();
  await t?.stop();
});

const review = {
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'local-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    operation: 'CREATE',
    namespace: 'default',
    userInfo: { username: 'dev' },
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hello', labels: { nemu_label_9f2c: 'checkout' } },
      spec: { containers: [{ name: 'app', image: 'ubuntu:14.04' }] },
    },
  },
};

describe('local mode', () => {
  it('a key set with `nemutator dict set` comes back as a patch from /mutate, and lands in the mutation log', async () => {
    expect((await cli('dict', 'set', 'nemu_label_9f2c', 'app.kubernetes.io/name')).code).toBe(0);
    expect((await cli('dict', 'set', 'nemu_image_ubuntu', '20.04')).code).toBe(0);
    expect((await cli('dict', 'get', 'nemu_label_9f2c')).out.trim()).toBe('app.kubernetes.io/name');
    expect((await cli('dict', 'list', 'nemu_')).out).toMatch(/nemu_image_ubuntu\s+20\.04/);

    const res = await post(local.webhookUrl, JSON.stringify(review));
    expect(res.status).toBe(200);
    const out = JSON.parse(res.body) as { response: { uid: string; allowed: boolean; patchType: string; patch: string } };
    expect(out.response).toMatchObject({ uid: 'local-1', allowed: true, patchType: 'JSONPatch' });
    const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString()) as Array<{ op: string; path: string; value?: unknown }>;
    expect(ops).toContainEqual({ op: 'add', path: '/metadata/labels/app.kubernetes.io~1name', value: 'checkout' });
    expect(ops).toContainEqual({ op: 'remove', path: '/metadata/labels/nemu_label_9f2c' });
    expect(ops).toContainEqual({ op: 'replace', path: '/spec/containers/0/image', value: 'ubuntu:20.04' });

    const list = await cli('mutations', 'list', '--namespace', 'default', '--name', 'hello');
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/Pod\s+default\s+hello\s+CREATE\s+labels,image\s+dev/);
    const id = /^([0-9A-Z]{26})\s/m.exec(list.out)![1]!;
    const entry = JSON.parse((await cli('mutations', 'get', id)).out) as { reviewUid: string; reversePatch: unknown[] };
    expect(entry.reviewUid).toBe('local-1');

    const rb = await cli('mutations', 'rollback', id);
    expect(rb.code).toBe(1);
    expect(rb.err).toMatch(/NEMU_ERR_CONFIG: rollback needs a Kubernetes cluster.*--kubeconfig/);
  });

  it('`nemutator dict` says what is missing and deletes keys', async () => {
    expect((await cli('dict', 'set', 'only-key')).err).toMatch(/needs KEY and VALUE/);
    // Its own key, so it runs alone as well as after the test above.
    expect((await cli('dict', 'set', 'nemu_image_debian', '12')).code).toBe(0);
    expect((await cli('dict', 'del', 'nemu_image_debian')).code).toBe(0);
    const gone = await cli('dict', 'get', 'nemu_image_debian');
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/NEMU_ERR_NOT_FOUND: dictionary key nemu_image_debian is not set/);
  });

  it('`nemutator skip-rules` lists the rules and says what is wrong with a delete', async () => {
    const list = await cli('skip-rules', 'list', '--namespace', 'default');
    expect(list.code).toBe(0);
    expect(list.out.trim()).toBe('No skip rules in default.');
    const missing = await cli('skip-rules', 'delete', 'default', 'ReplicaSet', 'web-7d9f8');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/NEMU_ERR_NOT_FOUND: there is no skip rule for ReplicaSet default\/web-7d9f8; 'nemutator skip-rules list' shows the rules/);
    expect((await cli('skip-rules', 'delete', 'default')).err).toMatch(/needs NAMESPACE KIND NAME/);
  });
});
