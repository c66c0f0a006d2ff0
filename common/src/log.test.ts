import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';

import { createLogger } from './log.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination };
}

describe('logger redaction', () => {
  it('never writes tokens, Authorization headers or secret values', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    const secret = 's3cr3t-VALUE-do-not-leak';
    log.info({ token: secret }, 'hello');
    log.info({ req: { headers: { authorization: `Bearer ${secret}` } } }, 'request');
    log.info({ read: { path: 'kv/app', version: 3, value: secret } }, 'read');
    log.info({ agent: { token: secret, node: 'n1' } }, 'agent');
    log.info({ login: { auth: { client_token: secret } } }, 'vault');
    const out = lines.join('');
    expect(out).not.toContain(secret);
    expect(out).toContain('[redacted]');
    // What is not secret stays readable.
    expect(out).toContain('kv/app');
    expect(out).toContain('"node":"n1"');
  });
});
