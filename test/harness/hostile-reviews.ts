// What the webhook port can be sent by anyone who reaches it (it has no client
// authentication): deeply nested and very large AdmissionReviews, many at once, with ordinary
// reviews beside them whose latency is what kube-apiserver would notice. Used by the review
// bounds test and bench/faults.
import { fork } from 'node:child_process';
import { type ClientHttp2Session, connect } from 'node:http2';
import { fileURLToPath } from 'node:url';

const head = (uid: string) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    operation: 'CREATE',
    namespace: 'shop',
  },
});

/** An ordinary Pod review of a few KiB: labels and a container, something for the mutators to look at. */
export function ordinaryReview(uid: string): string {
  const r = head(uid);
  return JSON.stringify({
    ...r,
    request: {
      ...r.request,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'web-', namespace: 'shop', labels: { app: 'web' } },
        spec: { containers: [{ name: 'app', image: 'nginx:1.27', env: [{ name: 'A', value: 'b' }] }] },
      },
    },
  });
}

/** A review of about `bytes` whose Pod spec holds arrays nested as deep as the bytes allow. */
export function nestedReview(uid: string, bytes: number): string {
  const r = head(uid);
  const shell = JSON.stringify({
    ...r,
    request: {
      ...r.request,
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'deep', namespace: 'shop' }, spec: { containers: [{ name: 'c', image: 'x', args: '@@' }] } },
    },
  });
  const depth = Math.max(1, Math.floor((bytes - shell.length) / 2));
  return shell.replace('"@@"', '['.repeat(depth) + ']'.repeat(depth));
}

/** A well-formed Pod review of about `bytes`: thousands of env vars and annotations, as a generated manifest might carry. */
export function largeReview(uid: string, bytes: number): string {
  const r = head(uid);
  const env: Array<{ name: string; value: string }> = [];
  const annotations: Record<string, string> = {};
  const entry = 140;
  for (let i = 0; i < Math.floor(bytes / 2 / entry); i++) env.push({ name: `VAR_${i}`, value: `value-${i}-${'x'.repeat(100)}` });
  for (let i = 0; i < Math.floor(bytes / 2 / entry); i++) annotations[`example.com/note-${i}`] = `${'n'.repeat(110)}-${i}`;
  return JSON.stringify({
    ...r,
    request: {
      ...r.request,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'big-', namespace: 'shop', labels: { app: 'big' }, annotations },
        spec: { containers: [{ name: 'app', image: 'nginx:1.27', env }] },
      },
    },
  });
}

export interface ReviewAnswer {
  status: number;
  ms: number;
  /** The response's patch was present (the review was mutated). */
  patched: boolean;
  error?: string;
}

/** POSTs one review on an HTTP/2 session; never rejects (a failed request is status 0). */
export function postReview(session: ClientHttp2Session, body: string, timeoutMs = 30_000): Promise<ReviewAnswer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let status = 0;
    const chunks: Buffer[] = [];
    let settled = false;
    const done = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      let patched = false;
      if (status === 200) {
        try {
          patched = typeof (JSON.parse(text) as { response?: { patch?: string } }).response?.patch === 'string';
        } catch {
          /* not JSON: not patched */
        }
      }
      resolve({ status, ms: performance.now() - started, patched, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => {
      req.close();
      done('timed out');
    }, timeoutMs);
    const req = session.request({
      ':method': 'POST',
      ':path': '/mutate',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => done());
    req.on('error', (e) => done(e.message));
    req.on('close', () => done());
    req.end(body);
  });
}

export function openSessions(webhookUrl: string, n: number): ClientHttp2Session[] {
  const origin = webhookUrl.replace(/\/mutate$/, '');
  return Array.from({ length: n }, () => {
    const s = connect(origin, { rejectUnauthorized: false });
    s.on('error', () => undefined);
    return s;
  });
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export interface HostileRun {
  hostile: ReviewAnswer[];
  ordinary: ReviewAnswer[];
  /** Seconds from the end of the hostile wave to the first ordinary review answered 200 after it. */
  recoverSeconds: number;
}

export interface WaveOptions {
  nested: number;
  nestedBytes: number;
  large: number;
  largeBytes: number;
  rounds: number;
}

/** The hostile side alone: `nested` + `large` reviews at once on 8 sessions, `rounds` times. */
export async function sendWave(webhookUrl: string, opts: WaveOptions): Promise<ReviewAnswer[]> {
  const nestedBody = nestedReview('nested', opts.nestedBytes);
  const largeBody = largeReview('large', opts.largeBytes);
  const sessions = openSessions(webhookUrl, 8);
  const hostile: ReviewAnswer[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    const bodies = [...Array.from({ length: opts.nested }, () => nestedBody), ...Array.from({ length: opts.large }, () => largeBody)];
    hostile.push(...(await Promise.all(bodies.map((b, k) => postReview(sessions[k % sessions.length]!, b)))));
  }
  for (const s of sessions) s.destroy();
  return hostile;
}

/**
 * The hostile wave from a process of its own (as an attacker is: it does not share an event
 * loop with the apiserver), and meanwhile ordinary reviews every `everyMs` from this one,
 * after a warm-up of 20 that are not counted.
 */
export async function hostileWave(webhookUrl: string, opts: WaveOptions & { everyMs: number }): Promise<HostileRun> {
  const [session] = openSessions(webhookUrl, 1);
  for (let k = 0; k < 20; k++) await postReview(session!, ordinaryReview(`warm-${k}`));
  const sender = fork(fileURLToPath(new URL('./hostile-sender.ts', import.meta.url)), [webhookUrl, JSON.stringify(opts)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const hostileDone = new Promise<ReviewAnswer[]>((resolve, reject) => {
    sender.once('message', (m) => resolve(m as ReviewAnswer[]));
    sender.once('exit', (code) => reject(new Error(`the hostile sender exited (${code}) without results`)));
  });
  const ordinary: ReviewAnswer[] = [];
  let waveOver = false;
  let i = 0;
  const beside = (async () => {
    const inFlight: Array<Promise<void>> = [];
    while (!waveOver) {
      inFlight.push(postReview(session!, ordinaryReview(`ordinary-${i++}`)).then((a) => void ordinary.push(a)));
      await new Promise((r) => setTimeout(r, opts.everyMs));
    }
    await Promise.all(inFlight);
  })();
  let hostile: ReviewAnswer[];
  try {
    hostile = await hostileDone;
  } finally {
    waveOver = true;
    sender.kill();
  }
  const over = performance.now();
  await beside;
  let recoverSeconds = NaN;
  for (let k = 0; k < 200; k++) {
    const a = await postReview(session!, ordinaryReview(`after-${k}`));
    if (a.status === 200) {
      recoverSeconds = (performance.now() - over) / 1000;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  session!.destroy();
  return { hostile, ordinary, recoverSeconds };
}
