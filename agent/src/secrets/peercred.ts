/**
 * SO_PEERCRED of a unix-socket connection, through the tiny N-API addon in
 * agent/native/peercred (built by `npm run build:native`).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { secretsError } from './errors.ts';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

type Addon = { peercred(fd: number): PeerCred };
let addon: Addon | undefined;

function candidates(): string[] {
  const rel = 'native/peercred/build/Release/peercred.node';
  return [
    process.env.NEMUTATOR_PEERCRED_ADDON ?? '',
    fileURLToPath(new URL(`../../${rel}`, import.meta.url)), // agent/src/secrets → agent/native
    fileURLToPath(new URL(`../../../../agent/${rel}`, import.meta.url)), // dist/agent/src/secrets → agent/native
  ].filter((p) => p !== '');
}

export function loadPeercred(): Addon {
  if (addon) return addon;
  const path = candidates().find((p) => existsSync(p));
  if (!path) {
    throw new NemuError(ErrorCodes.CONFIG, `the peercred addon is not built (looked in ${candidates().join(', ')}); run \`npm run build:native\``);
  }
  addon = createRequire(import.meta.url)(path) as Addon;
  return addon;
}

/** The peer's credentials, recorded by the kernel when it called connect(). */
export function peerCredOf(socket: Socket): PeerCred {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw secretsError('NOT_A_POD', 'the connection has no file descriptor to identify its peer');
  return loadPeercred().peercred(fd);
}
