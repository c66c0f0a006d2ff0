import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { declaredPathIds, normalizePathId, parseRef, parseSecretsAnnotation, SECRETS_ANNOTATION } from './references.ts';

describe('vault: references', () => {
  it('parses mount, path and key (KV v2)', () => {
    expect(parseRef('vault:secret/app/db#password')).toEqual({ mount: 'secret', path: 'app/db', key: 'password', id: 'secret/app/db' });
    expect(parseRef('vault:kv/a#k')).toMatchObject({ mount: 'kv', path: 'a', key: 'k' });
  });

  it('refuses references that could escape their path or are malformed', () => {
    for (const bad of [
      'secret/app#k',
      'vault:secret#k',
      'vault:secret/app/db',
      'vault:secret/../x#k',
      'vault:secret//x#k',
      'vault:secret/a#',
      'vault:secret/a#b#c',
      'vault:secret/./a#k',
    ]) {
      expect(parseRef(bad), bad).toBeUndefined();
    }
  });

  it('normalizes the path forms used in acks and status', () => {
    expect(normalizePathId('vault:secret/app/db#password')).toBe('secret/app/db');
    expect(normalizePathId('secret/app/db')).toBe('secret/app/db');
  });

  it('a malformed annotation grants nothing, and never throws', () => {
    fc.assert(
      fc.property(fc.string(), (raw) => {
        const spec = parseSecretsAnnotation({ [SECRETS_ANNOTATION]: raw });
        if (spec) expect(declaredPathIds(spec, 'app')).toBeInstanceOf(Set);
      }),
    );
    expect(parseSecretsAnnotation({ [SECRETS_ANNOTATION]: '{"v":2}' })).toBeUndefined();
    expect(parseSecretsAnnotation({})).toBeUndefined();
  });

  it('gives a container its env and the pod files, not another container’s env', () => {
    const spec = parseSecretsAnnotation({
      [SECRETS_ANNOTATION]: JSON.stringify({
        v: 1,
        role: 'r',
        containers: { a: { env: { X: 'vault:secret/x#k', 'bad-name': 'vault:secret/y#k' } }, b: { env: { Y: 'vault:secret/y#k' } } },
        files: { 'f.txt': 'vault:secret/f#k', '../evil': 'vault:secret/e#k' },
        rotateSignal: 'SIGHUP',
      }),
    })!;
    expect([...declaredPathIds(spec, 'a')].sort()).toEqual(['secret/f', 'secret/x']);
    expect(Object.keys(spec.files)).toEqual(['f.txt']);
    expect(spec.rotateSignal).toBe('SIGHUP');
    expect(spec.role).toBe('r');
  });
});
