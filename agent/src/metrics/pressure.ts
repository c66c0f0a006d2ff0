/**
 * Pressure stall information (`/proc/pressure/{cpu,memory,io}`): the share of time tasks
 * waited for a resource. A kernel without PSI (or booted with psi=0) has no files; the
 * fields are then absent, which is not an error.
 */
import { join } from 'node:path';

import type { IPressure } from '#proto/codec.js';

import { readKernelFile } from './kernel-file.ts';

export type PressureResource = 'cpu' | 'memory' | 'io';

/**
 * `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and `full …` lines. Old kernels have no
 * `full` line for cpu: its fields stay absent. Undefined when the text holds neither line.
 */
export function parsePressure(text: string): IPressure | undefined {
  const out: IPressure = {};
  let found = false;
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const values = new Map<string, number>();
    for (const field of fields) {
      const eq = field.indexOf('=');
      const value = Number(field.slice(eq + 1));
      if (eq > 0 && Number.isFinite(value)) values.set(field.slice(0, eq), value);
    }
    const avg10 = values.get('avg10');
    const avg60 = values.get('avg60');
    const avg300 = values.get('avg300');
    const total = values.get('total');
    if (avg10 === undefined || avg60 === undefined || avg300 === undefined || total === undefined) continue;
    found = true;
    if (kind === 'some') {
      Object.assign(out, { someAvg10: avg10, someAvg60: avg60, someAvg300: avg300, someTotalUs: total });
    } else {
      Object.assign(out, { fullAvg10: avg10, fullAvg60: avg60, fullAvg300: avg300, fullTotalUs: total });
    }
  }
  return found ? out : undefined;
}

/**
 * The pressure of one resource, or undefined when the kernel does not expose it (no file
 * without PSI; EOPNOTSUPP on read when compiled in but disabled with psi=0).
 */
export function readPressure(procRoot: string, resource: PressureResource): IPressure | undefined {
  const text = readKernelFile(join(procRoot, 'pressure', resource));
  return text === undefined ? undefined : parsePressure(text);
}
