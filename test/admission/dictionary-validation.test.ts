// Issue 14, "Dictionary writes validated": a value the key's mutator could not use is refused
// at `PUT /api/v1/dictionary/{key}` (and so by `nemutator dict set`), the stored value stays,
// and the next pod still gets the good one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';
import { insecureAgent, post } from './https.ts';

const SHA256 = 'sha256:' + '0123456789abcdef'.repeat(4);

// One valid value for each kind of key, written first.
const GOOD: Record<string, string> = {
  nemu_label_team: 'example.com/team',
  nemu_label_value_team: 'payments',
  nemu_anno_owner: 'example.com/owner',
  nemu_anno_value_owner: 'ops@example.com',
  nemu_env_db: 'postgres://db:5432/app',
  nemu_image_ubuntu: `20.04@${SHA256}`,
  nemu_selectors_replace_list: '["nemu_label_team"]',
  nemu_tolerations: JSON.stringify([
    { match: { labels: { 'example.com/team': 'payments' } }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] },
  ]),
};

// [key, body, a fragment of the refusal naming the rule]
const BAD: Array<[string, unknown, string]> = [
  ['nemu_label_team', { value: 'not a label!' }, 'not a valid label key'],
  ['nemu_label_team', { value: 'Example.com/team' }, 'is not a DNS subdomain'],
  ['nemu_label_team', { value: 'x'.repeat(64) }, 'at most 63'],
  ['nemu_label_team', { value: 'nemu_label_other' }, 'another nemu_ placeholder'],
  ['nemu_label_value_team', { value: 'pay/ments' }, 'not a valid label value'],
  ['nemu_label_value_team', { value: '-payments' }, 'must begin and end with a letter or digit'],
  ['nemu_anno_owner', { value: 'owner email' }, 'not a valid annotation key'],
  ['nemu_anno_value_owner', { value: 'nemu_anno_value_x' }, 'not a valid annotation value'],
  ['nemu_env_db', { value: 'vault:secret/app/db' }, 'begins with vault: but is not a reference'],
  ['nemu_env_db', { value: 'x'.repeat(33 * 1024) }, 'larger than 32768 bytes'],
  ['nemu_image_ubuntu', { value: 'latest!' }, 'not a valid image tag or digest'],
  ['nemu_image_ubuntu', { value: 'sha256:abc123' }, 'the digest is not of the form'],
  ['nemu_image_ubuntu', { value: `20.04@sha256:${'A'.repeat(64)}` }, '64 lowercase hex digits'],
  ['nemu_image_ubuntu', { value: `sha1:${'a'.repeat(40)}` }, 'is not sha256, sha384 or sha512'],
  ['nemu_selectors_replace_list', { value: '["nemu_label_team",' }, 'not a JSON array'],
  ['nemu_selectors_replace_list', { value: '["nemu_label_team", 1]' }, 'entry 1 is not a string'],
  ['nemu_tolerations', { value: '{"tolerations": []}' }, 'must be a JSON array of rules'],
  ['nemu_tolerations', { value: '[{"tolerations": [{"key": "a", "operator": "Maybe"}]}]' }, 'operator must be Exists or Equal'],
  ['nemu_tolerations', { value: '[{"tolerations": [{"key": "a", "effect": "Never"}]}]' }, 'effect must be NoSchedule'],
  ['nemu_tolerations', { value: '[{"tolerations": [{"key": "a", "effect": "NoExecute", "tolerationSeconds": 2.5}]}]' }, 'tolerationSeconds must be an integer'],
  ['nemu_tolerations', { value: '[{"tolerations": [{"key": "a", "operator": "Exists", "value": "b"}]}]' }, 'value must be empty when operator is Exists'],
  ['nemu_label_team', { value: 7 }, 'must be a string'],
  ['nemu_label_team', {}, 'is missing; send {"value": "..."}'],
];

let t: TestLocal;
let api: string;
let auth: Record<string, string>;
const insecure = insecureAgent();

const url = (key: string) => `${api}/dictionary/${encodeURIComponent(key)}`;
const put = (key: string, body: unknown) =>
  fetch(url(key), { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
const stored = async (key: string) => ((await (await fetch(url(key), { headers: auth })).json()) as { value: string }).value;

beforeAll(async () => {
  // some sixty requests back to back: the per-identity rate limit is not what this tests
  t = await startTestLocal({ reportInterval: 10_000, apiRateLimit: 0 });
  api = t.local.apiUrl;
  auth = { authorization: `Bearer ${readFileSync(join(t.stateDir, 'admin-token'), 'utf8').trim()}` };
  for (const [key, value] of Object.entries(GOOD)) expect((await put(key, { value })).status, key).toBe(200);
});
afterAll(async () => {
  insecure.destroy();
  await t?.stop();
});

describe('PUT /api/v1/dictionary/{key} validates the value against what the key feeds', () => {
  it.each(BAD)('%s: %j is a 400 and the stored value stays', async (key, body, fragment) => {
    const res = await put(key, body);
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { code: string; message: string };
    expect(answer.code).toBe('NEMU_ERR_BAD_REQUEST');
    expect(answer.message).toContain(`dictionary value for ${key}`);
    expect(answer.message).toContain(fragment);
    expect(await stored(key)).toBe(GOOD[key]);
  });

  it('an env value is never echoed in the refusal', async () => {
    const res = await put('nemu_env_db', { value: 'vault:hunter2-pasted-password' });
    expect(res.status).toBe(400);
    expect(await res.text()).not.toContain('hunter2');
  });

  it('a key no mutator reads still takes any string', async () => {
    expect((await put('team_notes', { value: '-not a label, not a tag!-' })).status).toBe(200);
    expect(await stored('team_notes')).toBe('-not a label, not a tag!-');
  });

  it('`nemutator dict set` with a bad value exits non-zero and prints the code', async () => {
    const r = await t.cli('dict', 'set', 'nemu_label_value_team', 'not/a/value');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/NEMU_ERR_BAD_REQUEST: dictionary value for nemu_label_value_team is not a valid label value/);
    expect((await t.cli('dict', 'get', 'nemu_label_value_team')).out.trim()).toBe('payments');
    expect((await t.cli('dict', 'set', 'nemu_image_ubuntu', 'latest!')).err).toMatch(/NEMU_ERR_BAD_REQUEST: .*not a valid image tag or digest/);
  });

  it('after the refusals, a pod gets the values written before them', async () => {
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'dict-1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        operation: 'CREATE',
        namespace: 'default',
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p', labels: { nemu_label_team: 'nemu_label_value_team' } },
          spec: { containers: [{ name: 'app', image: 'ubuntu:14.04', env: [{ name: 'DB', value: 'nemu_env_db' }] }] },
        },
      },
    };
    const res = await post(t.local.webhookUrl, JSON.stringify(review), insecure);
    expect(res.status).toBe(200);
    const { response } = JSON.parse(res.body) as { response: { patch: string; warnings?: string[] } };
    expect(response.warnings ?? []).toEqual([]);
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString()) as Array<{ op: string; path: string; value?: unknown }>;
    expect(ops).toContainEqual({ op: 'add', path: '/metadata/labels/example.com~1team', value: 'payments' });
    expect(ops).toContainEqual({ op: 'replace', path: '/spec/containers/0/image', value: `ubuntu:20.04@${SHA256}` });
    expect(ops).toContainEqual({ op: 'replace', path: '/spec/containers/0/env/0/value', value: 'postgres://db:5432/app' });
    expect(ops).toContainEqual({ op: 'add', path: '/spec/tolerations', value: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] });
  });
});
