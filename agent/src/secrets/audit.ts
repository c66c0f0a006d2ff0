/**
 * The audit trail of the secrets socket: every read, push, ack and denial, with pod,
 * container, pid, path and version — never a value. One JSON log line each (`audit: <event>`),
 * so a log pipeline can route them apart from the agent's other logs.
 */
import type { Logger } from '#common/log.js';

export type AuditEvent = 'read' | 'push' | 'ack' | 'deny';

export interface AuditRecord {
  podUid?: string;
  pod?: string;
  namespace?: string;
  container?: string;
  pid?: number;
  path?: string;
  version?: number;
  code?: string;
}

export class AuditLog {
  private readonly log: Logger;

  constructor(log: Logger) {
    // Redaction is off for this child only: an audit line is built below from named fields
    // that never hold a value, and pino's path redaction was most of a cached read's cost.
    this.log = log.child({}, { redact: { paths: [], censor: '' } });
  }

  record(event: AuditEvent, r: AuditRecord): void {
    // Only these named fields are written: nothing the caller sent, nothing Vault answered.
    this.log.info(
      {
        audit: event,
        podUid: r.podUid,
        namespace: r.namespace,
        pod: r.pod,
        container: r.container,
        pid: r.pid,
        path: r.path,
        version: r.version,
        code: r.code,
        time: new Date().toISOString(),
      },
      `secrets ${event}`,
    );
  }
}
