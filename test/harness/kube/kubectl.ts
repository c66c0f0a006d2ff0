// Runs the real kubectl against a double, for tests. kubectl must be on PATH (it is on the
// machine image at /usr/bin/kubectl); its absence is an error, never a skipped test.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

let checked = false;
export function requireKubectl(): void {
  if (checked) return;
  try {
    execFileSync('kubectl', ['version', '--client', '--output=json'], { stdio: 'pipe' });
    checked = true;
  } catch {
    throw new Error(
      'NEMU_ERR_KUBECTL_MISSING: kubectl is not on PATH; the Kubernetes double is proven with the real client (install kubectl 1.32, e.g. /usr/bin/kubectl)',
    );
  }
}

export interface KubectlRunner {
  /** Resolves with the output; rejects with stderr in the message when kubectl exits non-zero. */
  (args: string[], opts?: { stdin?: unknown; env?: Record<string, string> }): Promise<string>;
  /** Resolves with output and exit code, whatever the outcome. */
  result(args: string[], opts?: { stdin?: unknown; env?: Record<string, string> }): Promise<KubectlResult>;
  /** Starts a long-running kubectl (e.g. get -w) and returns the child process. */
  spawn(args: string[]): ChildProcess;
  kubeconfig: string;
}

const cacheDirs: string[] = [];
process.once('exit', () => {
  for (const d of cacheDirs) rmSync(d, { recursive: true, force: true });
});

/** A kubectl bound to one kubeconfig, with a private discovery cache (fast and isolated). */
export function kubectlFor(kubeconfig: string): KubectlRunner {
  requireKubectl();
  const cacheDir = mkdtempSync(join(tmpdir(), 'nemu-kubectl-cache-'));
  cacheDirs.push(cacheDir);
  const base = ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir];
  const result = (args: string[], opts: { stdin?: unknown; env?: Record<string, string> } = {}): Promise<KubectlResult> =>
    new Promise((resolve) => {
      const child = execFile(
        'kubectl',
        [...base, ...args],
        { timeout: 20_000, env: { ...process.env, ...(opts.env ?? {}) }, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
          resolve({ stdout, stderr, code });
        },
      );
      if (opts.stdin !== undefined) child.stdin?.end(typeof opts.stdin === 'string' ? opts.stdin : JSON.stringify(opts.stdin));
      else child.stdin?.end();
    });
  const run = (async (args: string[], opts?: { stdin?: unknown; env?: Record<string, string> }) => {
    const r = await result(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }) as KubectlRunner;
  run.result = result;
  run.spawn = (args) => spawn('kubectl', [...base, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  run.kubeconfig = kubeconfig;
  return run;
}
