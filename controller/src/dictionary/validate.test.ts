import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { isNemuError } from '#common/errors.js';

import { chainKeys, DEFAULT_CHAIN, runChain } from '../mutators/chain.ts';
import type { KubeObject } from '../mutators/types.ts';
import { checkEntry, checkValue, MAX_VALUE_BYTES } from './dictionary.ts';
import { MAX_ENV_VALUE_BYTES, VALUE_RULES, valueProblem, valueRuleFor } from './validate.ts';

const SHA256 = 'sha256:' + 'a'.repeat(64);
const rules = (doc: unknown) => JSON.stringify(doc);
const gpu = { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' };

/** The thrown error of a refused write. */
function refusal(key: string, value: unknown): { code: string; status: number; message: string } {
  try {
    checkEntry(key, value);
  } catch (e) {
    if (isNemuError(e)) return { code: e.code, status: e.status, message: e.message };
    throw e;
  }
  throw new Error(`${key} = ${JSON.stringify(value)} was accepted`);
}

// [key, value, a fragment of the message naming the rule broken]
const INVALID: Array<[string, unknown, string]> = [
  ['nemu_label_ab12', 'not a label!', 'not a valid label key: the name has a character other than letters'],
  ['nemu_label_ab12', 'a'.repeat(64), 'the name has 64 characters, at most 63'],
  ['nemu_label_ab12', '-team', 'must begin and end with a letter or digit'],
  ['nemu_label_ab12', '', 'the name is empty'],
  ['nemu_label_ab12', 'Example.com/team', "the prefix before '/' is not a DNS subdomain"],
  ['nemu_label_ab12', `${'a'.repeat(254)}/team`, "the prefix before '/' has 254 characters, at most 253"],
  ['nemu_label_ab12', 'example.com/', 'the name after the prefix is empty'],
  ['nemu_label_ab12', 'nemu_label_cd34', 'another nemu_ placeholder'],
  ['nemu_label_value_ab12', 'a'.repeat(64), 'not a valid label value: the value has 64 characters, at most 63'],
  ['nemu_label_value_ab12', 'payments/eu', 'the value has a character other than letters'],
  ['nemu_label_value_ab12', 'payments_', 'must begin and end with a letter or digit'],
  ['nemu_label_value_ab12', 'nemu_label_value_cd34', 'another nemu_ placeholder'],
  ['nemu_anno_ab12', 'owner email', 'not a valid annotation key: the name has a character other than letters'],
  ['nemu_anno_ab12', 'example..com/owner', "the prefix before '/' is not a DNS subdomain"],
  ['nemu_anno_value_ab12', 'nemu_anno_value_cd34', 'not a valid annotation value: it is another nemu_ placeholder'],
  ['nemu_env_db1', 'x'.repeat(MAX_ENV_VALUE_BYTES + 1), `not a valid env value: it is larger than ${MAX_ENV_VALUE_BYTES} bytes`],
  ['nemu_env_db1', 'vault:secret/app/db', 'it begins with vault: but is not a reference'],
  ['nemu_env_db1', 'vault:secret#password', 'it begins with vault: but is not a reference'],
  ['nemu_abc123', 'nemu_env_db1', 'another nemu_ placeholder, which the env mutator'],
  ['nemu_image_ubuntu', 'latest!', 'not a valid image tag or digest: the tag has a character other than'],
  ['nemu_image_ubuntu', '.hidden', "begins with '.' or '-'"],
  ['nemu_image_ubuntu', 't'.repeat(129), 'the tag has 129 characters, at most 128'],
  ['nemu_image_ubuntu', 'sha256:abc', 'the digest is not of the form <algorithm>:<hex digits>'],
  ['nemu_image_ubuntu', 'sha256:' + 'a'.repeat(40), 'a sha256 digest has exactly 64 lowercase hex digits'],
  ['nemu_image_ubuntu', 'sha256:' + 'A'.repeat(64), 'a sha256 digest has exactly 64 lowercase hex digits'],
  ['nemu_image_ubuntu', 'md5:' + 'a'.repeat(32), 'the digest algorithm "md5" is not sha256, sha384 or sha512'],
  ['nemu_image_ubuntu', '20.04@', 'the digest is not of the form'],
  ['nemu_image_docker.io/library/ubuntu', '   ', 'it is empty'],
  ['nemu_selectors_replace_list', '["nemu_label_ab12", ', 'it begins with [ but is not a JSON array'],
  ['nemu_selectors_replace_list', '["app", 7]', 'entry 1 is not a string'],
  ['nemu_selectors_replace_list', 'app, not/a/key', 'entry 1 is not a label key'],
  ['nemu_tolerations', '{"tolerations": []}', 'not a valid toleration rule document: it must be a JSON array of rules'],
  ['nemu_tolerations', '[{match}]', 'is not JSON'],
  ['nemu_tolerations', rules([{ match: {} }]), 'rule 0 has no "tolerations" array'],
  ['nemu_tolerations', rules([{ match: { namespace: 7 }, tolerations: [] }]), 'match.namespace must be a name or a list of names'],
  [
    'nemu_tolerations',
    rules([{ tolerations: [{ key: 'a', operator: 'Sometimes' }] }]),
    'toleration 0 is not a valid toleration: operator must be Exists or Equal',
  ],
  ['nemu_tolerations', rules([{ tolerations: [gpu, { key: 'a', effect: 'NoRun' }] }]), 'toleration 1 is not a valid toleration: effect must be NoSchedule'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', effect: 'NoExecute', tolerationSeconds: 1.5 }] }]), 'tolerationSeconds must be an integer'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', effect: 'NoExecute', tolerationSeconds: '60' }] }]), 'tolerationSeconds must be an integer'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', effect: 'NoSchedule', tolerationSeconds: 60 }] }]), 'tolerationSeconds needs effect NoExecute'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', operator: 'Exists', value: 'b' }] }]), 'value must be empty when operator is Exists'],
  ['nemu_tolerations', rules([{ tolerations: [{ value: 'b' }] }]), 'operator must be Exists when key is empty'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'not a key', operator: 'Exists' }] }]), 'key is not a label key'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', value: 'b c' }] }]), 'value is not a label value'],
  ['nemu_tolerations', rules([{ tolerations: [{ key: 'a', operator: 'Exists', tolerateAll: true }] }]), 'unknown field "tolerateAll"'],
  // the general rules hold for every key
  ['nemu_label_ab12', 42, 'must be a string'],
  ['anything', 'x'.repeat(MAX_VALUE_BYTES + 1), `larger than ${MAX_VALUE_BYTES} bytes`],
  ['nemu_label_ab12', undefined, 'is missing; send {"value": "..."}'],
];

const VALID: Array<[string, string]> = [
  ['nemu_label_ab12', 'team'],
  ['nemu_label_ab12', 'app.kubernetes.io/name'],
  ['nemu_label_ab12', 'a'.repeat(63)],
  ['nemu_label_value_ab12', 'payments'],
  ['nemu_label_value_ab12', ''],
  ['nemu_label_value_ab12', 'v1.2_rc-3'],
  ['nemu_anno_ab12', 'example.com/owner'],
  ['nemu_anno_value_ab12', 'ops@example.com, any text: {"json": true}\n'],
  ['nemu_anno_value_ab12', ''],
  ['nemu_env_db1', 'postgres://db:5432/app?sslmode=require'],
  ['nemu_env_db1', ''],
  ['nemu_env_db1', 'vault:secret/app/db#password'],
  ['nemu_abc123', 'old-form value'],
  ['nemu_image_ubuntu', '20.04'],
  ['nemu_image_ubuntu', SHA256],
  ['nemu_image_ubuntu', `20.04@${SHA256}`],
  ['nemu_image_registry:5000/team/app', `@${SHA256}`],
  ['nemu_image_ubuntu', `sha512:${'b'.repeat(128)}`],
  ['nemu_selectors_replace_list', '["nemu_label_ab12", "app"]'],
  ['nemu_selectors_replace_list', 'nemu_label_ab12, app example.com/tier'],
  ['nemu_selectors_replace_list', ''],
  ['nemu_tolerations', '[]'],
  [
    'nemu_tolerations',
    rules([{ match: { namespace: ['batch', 'ml'], labels: { tier: 'gpu' } }, tolerations: [gpu, { key: 'spot', operator: 'Equal', value: 'true' }] }]),
  ],
  [
    'nemu_tolerations',
    rules([
      { tolerations: [{ operator: 'Exists' }, { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }] },
    ]),
  ],
];

describe('dictionary writes are validated against what the key feeds', () => {
  it.each(INVALID)('refuses %s = %j (400, %s)', (key, value, fragment) => {
    const e = refusal(key, value);
    expect(e.code).toBe('NEMU_ERR_BAD_REQUEST');
    expect(e.status).toBe(400);
    expect(e.message).toContain(`dictionary value for ${key}`);
    expect(e.message).toContain(fragment);
  });

  it('covers every key kind with invalid and valid values', () => {
    for (const rule of VALUE_RULES) {
      expect(
        INVALID.some(([k]) => valueRuleFor(k) === rule),
        rule.what,
      ).toBe(true);
      expect(
        VALID.some(([k]) => valueRuleFor(k) === rule),
        rule.what,
      ).toBe(true);
    }
  });

  it.each(VALID)('accepts %s = %j', (key, value) => {
    expect(() => checkEntry(key, value)).not.toThrow();
  });

  it('says which form a refused value should have', () => {
    expect(refusal('nemu_label_value_ab12', '-x').message).toMatch(
      /; expected at most 63 characters of \[A-Za-z0-9._-\] beginning and ending with a letter or digit, or empty, e.g. checkout$/,
    );
    expect(refusal('nemu_image_ubuntu', 'latest!').message).toContain('expected a tag of 1 to 128 characters');
    expect(refusal('nemu_tolerations', '{}').message).toContain('expected a JSON array of rules [{"match"');
  });

  it('accepts any string under a key no mutator reads', () => {
    for (const key of ['team_owner', 'nemu_custom_thing', 'nemu_env_', 'nemu_x-y']) {
      expect(valueRuleFor(key)).toBeUndefined();
      expect(() => checkEntry(key, '-not a label, not a tag!-')).not.toThrow();
    }
  });

  it('a read or delete checks the key only; a write without a value is a 400', () => {
    expect(() => checkEntry('nemu_label_ab12')).not.toThrow();
    expect(refusal('nemu_label_ab12', undefined).message).toBe('dictionary value for nemu_label_ab12 is missing; send {"value": "..."}');
    expect(() => checkValue('nemu_label_ab12', undefined)).toThrow(/is missing/);
    expect(refusal('bad key', 'x').message).toContain('dictionary key "bad key" is not valid');
  });

  it('never echoes a refused value into the message', () => {
    const secret = 'vault:hunter2-s3cret';
    const cases: Array<[string, string]> = [
      ['nemu_env_db1', secret],
      ['nemu_env_db1', `nemu_${'hunter2'}`],
      ['nemu_label_value_ab12', `hunter2 ${'x'.repeat(80)}`],
      ['nemu_image_ubuntu', 'hunter2!'],
      ['nemu_tolerations', `[{"tolerations": [{"key": "hunter2", "operator": "hunter2"}]}]`],
      ['nemu_selectors_replace_list', '["hunter2 x"]'],
    ];
    for (const [key, value] of cases) expect(refusal(key, value).message).not.toContain('hunter2');
  });
});

// The write accepts exactly what the mutators use: a value refused here is one the chain would
// have left unchanged with a warning, and an accepted one is applied.
describe('the write and the mutator agree', () => {
  const chained = (object: KubeObject, dict: Record<string, string>) => {
    const ctx = { kind: 'Pod' as const, namespace: 'web' };
    const keys = chainKeys(DEFAULT_CHAIN, object, ctx);
    return runChain(DEFAULT_CHAIN, object, {
      ...ctx,
      operation: 'CREATE',
      dictionary: new Map(Object.entries(dict).filter(([k]) => keys.includes(k))),
      recommendations: [],
    });
  };
  const pod = (labels: Record<string, string>, image = 'ubuntu:14.04'): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', labels },
    spec: { containers: [{ name: 'c', image }] },
  });
  const text = fc.oneof(
    fc.string({ unit: fc.constantFrom(...'aZ09-_./:@ !'.split('')), maxLength: 70 }),
    fc.constantFrom('nemu_label_x', 'a'.repeat(63), 'a'.repeat(64), 'example.com/a', `20.04@${SHA256}`, SHA256, SHA256.toUpperCase(), '.x', 'x/'),
  );

  it('label keys and values', () => {
    fc.assert(
      fc.property(text, text, (k, v) => {
        const r = chained(pod({ nemu_label_k: 'nemu_label_value_v' }), { nemu_label_k: k, nemu_label_value_v: v });
        const labels = (r.object.metadata as { labels: Record<string, string> }).labels;
        expect(Object.keys(labels)[0] === k, `key ${JSON.stringify(k)}`).toBe(valueProblem('nemu_label_k', k) === undefined);
        expect(Object.values(labels)[0] === v, `value ${JSON.stringify(v)}`).toBe(valueProblem('nemu_label_value_v', v) === undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('image tags and digests', () => {
    fc.assert(
      fc.property(text, (v) => {
        const r = chained(pod({}, 'ubuntu'), { nemu_image_ubuntu: v });
        const image = (r.object.spec as { containers: Array<{ image: string }> }).containers[0]!.image;
        expect(image !== 'ubuntu', `value ${JSON.stringify(v)}`).toBe(valueProblem('nemu_image_ubuntu', v) === undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('an accepted toleration document is applied', () => {
    const doc = VALID.filter(([k]) => k === 'nemu_tolerations').at(-1)![1];
    const r = chained(pod({}), { nemu_tolerations: doc });
    expect(r.warnings).toEqual([]);
    expect((r.object.spec as { tolerations: unknown[] }).tolerations).toHaveLength(2);
  });
});
