import { describe, expect, it } from 'vitest';

import { decodeEnvelope, encodeEnvelope, PROTOCOL_VERSION } from './codec.ts';

describe('fleet frame codec', () => {
  it('round-trips a NodeReport with 64-bit counters as plain numbers', () => {
    const bytes = encodeEnvelope({
      report: {
        nodeName: 'node-a',
        timeUnixMs: 1_790_000_000_123,
        seq: 42,
        node: { cpuCores: 2, memoryTotalBytes: 25_769_803_776, cpuPressure: { someAvg10: 1.5, someTotalUs: 123456789012 } },
        pods: [{ uid: 'u1', qos: 'burstable', containers: [{ id: 'c'.repeat(64), cpuUsageCores: 0.25, memoryWorkingSetBytes: 1 << 30 }] }],
      },
    });
    const env = decodeEnvelope(bytes);
    expect(env.body).toBe('report');
    expect(env.report?.timeUnixMs).toBe(1_790_000_000_123);
    expect(env.report?.node?.memoryTotalBytes).toBe(25_769_803_776);
    expect(env.report?.node?.cpuPressure?.someTotalUs).toBe(123456789012);
    expect(env.report?.pods?.[0]?.containers?.[0]?.memoryWorkingSetBytes).toBe(1 << 30);
  });

  it('carries commands and results with their request id', () => {
    const env = decodeEnvelope(encodeEnvelope({ command: { requestId: 'r-1', deadlineUnixMs: 5, echo: { text: 'hi' } } }));
    expect(env.command?.requestId).toBe('r-1');
    expect(env.command?.kind).toBe('echo');
    const hello = decodeEnvelope(encodeEnvelope({ hello: { protocolVersion: PROTOCOL_VERSION, nodeName: 'n' } }));
    expect(hello.hello?.nodeName).toBe('n');
  });

  it('rejects garbage, empty and oversized frames with a clear code', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return { code: (e as { code?: string }).code, message: (e as Error).message };
      }
      return undefined;
    };
    expect(codeOf(() => decodeEnvelope(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f])))).toMatchObject({
      code: 'NEMU_ERR_FLEET_FRAME',
      message: expect.stringMatching(/not a valid/),
    });
    expect(codeOf(() => decodeEnvelope(new Uint8Array()))).toMatchObject({
      code: 'NEMU_ERR_FLEET_FRAME',
      message: expect.stringMatching(/carries no known message/),
    });
    expect(codeOf(() => decodeEnvelope(new Uint8Array(2048), 1024))).toMatchObject({
      code: 'NEMU_ERR_FLEET_FRAME',
      message: expect.stringMatching(/exceeds the limit of 1024 bytes/),
    });
    try {
      decodeEnvelope(Uint8Array.from([0x0a, 0x05, 0x01]));
    } catch (e) {
      expect((e as { code: string }).code).toBe('NEMU_ERR_FLEET_FRAME');
    }
  });
});
