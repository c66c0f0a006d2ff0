/**
 * Rotation and status across the fleet: one command per connected agent, sent at once, each
 * with the same deadline. A node that fails or does not answer is reported next to the ones
 * that did — a rotation is never "all or nothing" from the caller's point of view. Only
 * references, versions and counts travel here; agents never send values.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { ICommand, ICommandResult } from '#proto/codec.js';

/** What fan-out needs of the fleet hub. */
export interface SecretsFleet {
  readonly connectedNodes: string[];
  command(node: string, command: Omit<ICommand, 'requestId' | 'deadlineUnixMs'>, timeoutMs: number): Promise<ICommandResult>;
}

export interface NodeFailure {
  code: string;
  message: string;
}

export interface RotateNodeResult {
  node: string;
  ok: boolean;
  pathsChecked: number;
  newVersions: number;
  watchersNotified: number;
  error?: NodeFailure;
}

export interface RotateSummary {
  path: string;
  nodes: RotateNodeResult[];
  totals: { nodes: number; answered: number; failed: number; pathsChecked: number; newVersions: number; watchersNotified: number };
}

export interface SecretHolderRow {
  node: string;
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  path: string;
  /** Latest version the agent served to the container. */
  version: number;
  /** Latest version the workload acknowledged (0: none yet). */
  ackedVersion: number;
  ackedAt: string | null;
  /** Acknowledged the version it was served. */
  current: boolean;
}

export interface StatusSummary {
  path: string;
  holders: SecretHolderRow[];
  nodes: Array<{ node: string; ok: boolean; holders: number; error?: NodeFailure }>;
}

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

/**
 * A secret path as the agents know it: `<mount>/<path>` (KV v2, e.g. `secret/app/db`).
 * `vault:secret/app/db#password` is accepted too: the reference's key is dropped, since
 * versions belong to the whole secret.
 */
export function normalizeSecretPath(input: unknown, opts: { required: boolean }): string {
  if (input === undefined || input === null || input === '') {
    if (opts.required)
      throw new NemuError(
        ErrorCodes.BAD_REQUEST,
        'path is required: the secret to rotate, as <mount>/<path> (e.g. secret/app/db) or vault:<mount>/<path>#<key>',
        { status: 400 },
      );
    return '';
  }
  if (typeof input !== 'string') throw new NemuError(ErrorCodes.BAD_REQUEST, 'path must be a string such as secret/app/db', { status: 400 });
  let p = input.trim();
  if (p.startsWith('vault:')) p = p.slice('vault:'.length);
  const hash = p.indexOf('#');
  if (hash >= 0) p = p.slice(0, hash);
  p = p.replace(/^\/+|\/+$/g, '');
  const segments = p.split('/');
  if (segments.length < 2 || segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) {
    throw new NemuError(
      ErrorCodes.BAD_REQUEST,
      `path ${JSON.stringify(input)} is not a secret path; expected <mount>/<path> such as secret/app/db (letters, digits, . _ - between slashes)`,
      { status: 400 },
    );
  }
  return segments.join('/');
}

function failure(e: unknown): NodeFailure {
  const err = e as { code?: unknown; message?: unknown };
  return { code: typeof err.code === 'string' ? err.code : ErrorCodes.INTERNAL, message: typeof err.message === 'string' ? err.message : String(e) };
}

/** Sends the same command to every connected agent; results in node-name order. */
async function everyNode<T>(
  fleet: SecretsFleet,
  command: Omit<ICommand, 'requestId' | 'deadlineUnixMs'>,
  timeoutMs: number,
  read: (node: string, r: ICommandResult) => T,
): Promise<Array<{ node: string; value?: T; error?: NodeFailure }>> {
  const nodes = [...fleet.connectedNodes].sort();
  return Promise.all(
    nodes.map(async (node) => {
      try {
        const r = await fleet.command(node, command, timeoutMs);
        if (r.error && (r.error.code || r.error.message)) return { node, error: { code: r.error.code || ErrorCodes.INTERNAL, message: r.error.message ?? '' } };
        return { node, value: read(node, r) };
      } catch (e) {
        return { node, error: failure(e) };
      }
    }),
  );
}

export async function rotateEverywhere(fleet: SecretsFleet, path: string, timeoutMs: number): Promise<RotateSummary> {
  const answers = await everyNode(fleet, { rotate: { path } }, timeoutMs, (node, r) => {
    if (!r.rotate) throw new NemuError(ErrorCodes.INTERNAL, `the agent on ${node} answered without a rotate result`);
    return {
      pathsChecked: Number(r.rotate.pathsChecked ?? 0),
      newVersions: Number(r.rotate.newVersions ?? 0),
      watchersNotified: Number(r.rotate.watchersNotified ?? 0),
    };
  });
  const nodes: RotateNodeResult[] = answers.map((a) =>
    a.value ? { node: a.node, ok: true, ...a.value } : { node: a.node, ok: false, pathsChecked: 0, newVersions: 0, watchersNotified: 0, error: a.error! },
  );
  const sum = (k: 'pathsChecked' | 'newVersions' | 'watchersNotified') => nodes.reduce((n, r) => n + r[k], 0);
  const answered = nodes.filter((n) => n.ok).length;
  return {
    path,
    nodes,
    totals: {
      nodes: nodes.length,
      answered,
      failed: nodes.length - answered,
      pathsChecked: sum('pathsChecked'),
      newVersions: sum('newVersions'),
      watchersNotified: sum('watchersNotified'),
    },
  };
}

export async function statusEverywhere(fleet: SecretsFleet, path: string, timeoutMs: number): Promise<StatusSummary> {
  const answers = await everyNode(fleet, { secretStatus: { path } }, timeoutMs, (node, r) =>
    (r.secretStatus?.holders ?? []).map((h): SecretHolderRow => {
      const version = Number(h.version ?? 0);
      const ackedVersion = Number(h.ackedVersion ?? 0);
      const ackedMs = Number(h.ackedUnixMs ?? 0);
      return {
        node,
        namespace: h.namespace ?? '',
        pod: h.pod ?? '',
        podUid: h.podUid ?? '',
        container: h.container ?? '',
        path: h.path ?? '',
        version,
        ackedVersion,
        ackedAt: ackedMs > 0 ? new Date(ackedMs).toISOString() : null,
        current: version > 0 && ackedVersion >= version,
      };
    }),
  );
  const holders = answers
    .flatMap((a) => a.value ?? [])
    .sort(
      (a, b) =>
        a.namespace.localeCompare(b.namespace) ||
        a.pod.localeCompare(b.pod) ||
        a.container.localeCompare(b.container) ||
        a.path.localeCompare(b.path) ||
        a.node.localeCompare(b.node),
    );
  const nodes = answers.map((a) => (a.error ? { node: a.node, ok: false, holders: 0, error: a.error } : { node: a.node, ok: true, holders: a.value!.length }));
  return { path, holders, nodes };
}
