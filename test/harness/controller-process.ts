// The controller in a process of its own (local mode, run by Node with tsx, no wrapper
// process in between), so a test can kill -9 it and start it again on the same state; and a
// steady stream of AdmissionReviews against its webhook.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort } from './ports.ts';
import { until } from './wait.ts';

export interface ControllerProcess {
  child: ChildProcess;
  stateDir: string;
  webhookUrl: string;
  apiUrl: string;
  /** The controller's CA (PEM). */
  ca: string;
  /** The admin token for the REST API. */
  token: string;
  /** Every line the process wrote so far (JSON log lines parsed, others as `raw`), with the time it was read. */
  logs: Array<{ at: number; line: Record<string, unknown> }>;
  /** kill -9; resolves once the process is gone. */
  kill(): Promise<void>;
  api(path: string, init?: { method?: string; body?: unknown }): Promise<Response>;
}

/**
 * Starts local mode with `args` (e.g. --store redis --redis-url …) on `stateDir` (fresh by
 * default); resolves once /readyz answers 200. A port the kernel handed out can be taken
 * before the controller binds it (by a client connection's local port, under load): then it
 * starts again on fresh ports.
 */
export async function startControllerProcess(args: string[] = [], stateDir = mkdtempSync(join(tmpdir(), 'nemu-proc-'))): Promise<ControllerProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(args, stateDir);
    } catch (e) {
      if (attempt >= 3 || !(e instanceof Error && e.message.includes('EADDRINUSE'))) throw e;
    }
  }
}

async function startOnce(args: string[], stateDir: string): Promise<ControllerProcess> {
  const [webhook, api, fleet, metrics] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'local/src/main.ts',
      '--state-dir',
      stateDir,
      '--webhook-port',
      String(webhook),
      '--api-port',
      String(api),
      '--fleet-port',
      String(fleet),
      '--scheduler-port',
      '0',
      '--agent-metrics-port',
      String(metrics),
      '--log-format',
      'json',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: ControllerProcess['logs'] = [];
  let text = '';
  let pending = '';
  const read = (d: Buffer) => {
    text += d;
    pending += d;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const l of lines) {
      if (l.trim() === '') continue;
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(l) as Record<string, unknown>;
      } catch {
        line = { raw: l }; // printed by something other than the logger (a library, Node)
      }
      logs.push({ at: Date.now(), line });
    }
  };
  child.stdout!.on('data', read);
  child.stderr!.on('data', read);
  // 'close', not 'exit': only then has everything the process wrote been read.
  let how = '';
  const exited = new Promise<void>((r) =>
    child.once('close', (code, signal) => {
      how = signal ? `signal ${signal}` : `exit code ${code}`;
      r();
    }),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const apiUrl = `http://127.0.0.1:${api}`;
  try {
    await until(
      'the controller to be ready',
      async () => {
        if (gone) throw new Error(`the controller exited while starting (${how}):\n${text}`);
        return (await fetch(`${apiUrl}/readyz`).catch(() => undefined))?.status === 200;
      },
      60_000,
      100,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const token = readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
  return {
    child,
    stateDir,
    webhookUrl: `https://127.0.0.1:${webhook}/mutate`,
    apiUrl,
    ca: readFileSync(join(stateDir, 'tls', 'ca.crt'), 'utf8'),
    token,
    logs,
    async kill() {
      if (!gone) child.kill('SIGKILL');
      await exited;
    },
    api(path, init = {}) {
      return fetch(`${apiUrl}${path}`, {
        method: init.method ?? 'GET',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
    },
  };
}

export interface Answer {
  /** When the review was due to be sent (ms, Date.now()), and how long its answer took. */
  sentAt: number;
  ms: number;
  /** The mutation id the answer handed out (the Pod's nemutator.io/mutation label), if any. */
  id?: string;
  patched: boolean;
  warnings: string[];
}

export interface ReviewLoad {
  answers: Answer[];
  /** Requests that got no answer (the connection died). */
  failed: number;
  /** Stops sending; resolves when every request sent has settled. */
  stop(): Promise<void>;
}

/**
 * AdmissionReviews of a Pod labelled `nemu_label_team: payments` (mutated when the dictionary
 * holds nemu_label_team), each with its own uid, sent at `rate` per second on keep-alive
 * connections, on schedule whether or not earlier ones were answered.
 */
export function startReviewLoad(webhookUrl: string, ca: string, rate: number): ReviewLoad {
  const agent = new Agent({ ca, keepAlive: true, maxSockets: 64 });
  const answers: Answer[] = [];
  const inFlight = new Set<Promise<void>>();
  let failed = 0;
  let n = 0;
  const started = Date.now();
  const send = (sentAt: number) => {
    const uid = `load-${process.pid}-${n++}`;
    const body = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace: 'shop',
        userInfo: { username: 'load' },
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: 'web-', namespace: 'shop', labels: { nemu_label_team: 'payments' } },
          spec: { containers: [{ name: 'app', image: 'nginx' }] },
        },
      },
    });
    const p = new Promise<void>((resolve) => {
      const req = request(webhookUrl, { method: 'POST', agent, headers: { 'content-type': 'application/json' }, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('error', () => {
          failed++;
          resolve();
        });
        res.on('end', () => {
          try {
            const r = (JSON.parse(text) as { response: { patch?: string; warnings?: string[] } }).response;
            const patch = r.patch ? Buffer.from(r.patch, 'base64').toString() : '';
            const id = /"nemutator\.io\/mutation":"([0-9A-Z]{26})"|"path":"\/metadata\/labels\/nemutator.io~1mutation","value":"([0-9A-Z]{26})"/.exec(patch);
            answers.push({ sentAt, ms: Date.now() - sentAt, patched: patch !== '', warnings: r.warnings ?? [], ...(id ? { id: id[1] ?? id[2] } : {}) });
          } catch {
            failed++;
          }
          resolve();
        });
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.on('timeout', () => req.destroy());
      req.end(body);
    });
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  };
  // on schedule: every tick sends the reviews that are due, so a slow answer does not slow the load
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) * rate) / 1000);
    while (n < due) send(started + (n * 1000) / rate);
  }, 5);
  return {
    answers,
    get failed() {
      return failed;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      agent.destroy();
    },
  };
}
