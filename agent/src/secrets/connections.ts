/**
 * Who is at the other end of each socket connection: the kernel's SO_PEERCRED at accept time,
 * resolved to a pod's process (identity.ts) on the first request and re-checked against pid
 * reuse at most every 250 ms.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

import { isNemuError, type NemuError } from '#common/errors.js';

import { secretsError } from './errors.ts';
import { type CallerProcess, identifyProcess, stillSameProcess, uptimeTicksSync } from './identity.ts';
import { type PeerCred, peerCredOf } from './peercred.ts';

interface Connection {
  cred?: PeerCred;
  credError?: NemuError;
  acceptedAtTicks: number;
  process?: Promise<CallerProcess>;
  /** Last time the pid was confirmed to still be the process that connected. */
  checkedAt?: number;
}

/** A read of /proc costs more than the rest of a cached read: the pid is re-checked this often at most. */
const RECHECK_MS = 250;

export class Connections {
  private readonly bySocket = new WeakMap<Socket, Connection>();

  constructor(private readonly procRoot: string) {}

  /** Records the peer of a just-accepted connection (before it can send anything). */
  accepted(socket: Socket): void {
    const conn: Connection = { acceptedAtTicks: uptimeTicksSync(this.procRoot) };
    try {
      conn.cred = peerCredOf(socket);
    } catch (err) {
      conn.credError = isNemuError(err) ? err : secretsError('NOT_A_POD', `cannot identify the peer: ${(err as Error).message}`);
    }
    this.bySocket.set(socket, conn);
  }

  /** The pod process that opened the request's connection, or NOT_A_POD. */
  async identify(req: IncomingMessage): Promise<CallerProcess> {
    const conn = this.bySocket.get(req.socket);
    if (!conn) throw secretsError('NOT_A_POD', 'unknown connection');
    if (conn.credError) throw conn.credError;
    conn.process ??= identifyProcess(conn.cred!, conn.acceptedAtTicks, this.procRoot);
    const proc = await conn.process;
    const now = Date.now();
    if (conn.checkedAt === undefined || now - conn.checkedAt > RECHECK_MS) {
      if (!stillSameProcess(proc, this.procRoot)) throw secretsError('NOT_A_POD', `process ${proc.pid} that opened this connection is gone`);
      conn.checkedAt = now;
    }
    return proc;
  }
}
