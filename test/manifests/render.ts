/**
 * The shipped manifests as `kubectl kustomize` renders them: the base `manifests/`, or the
 * base with some of the components of `manifests/components/` (through a throw-away overlay,
 * as an operator's overlay would use them).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const manifestsDir = join(repoRoot, 'manifests');
export const componentsDir = join(manifestsDir, 'components');

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
};

export function kustomize(dir: string): string {
  try {
    return execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new Error('kubectl is not on PATH: this test builds manifests/ with `kubectl kustomize`; install kubectl (it is on the machine image)');
    }
    throw new Error(`kubectl kustomize ${dir} failed: ${err.stderr ?? err.message}`);
  }
}

export function parseObjects(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`kustomize output is not valid YAML: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as KubeObject | null;
    if (value !== null) objects.push(value);
  }
  return objects;
}

/** The shipped components (directories of manifests/components with a kustomization.yaml). */
export function componentNames(): string[] {
  if (!existsSync(componentsDir)) return [];
  return readdirSync(componentsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(componentsDir, d.name, 'kustomization.yaml')))
    .map((d) => d.name)
    .sort();
}

/** The base, plus `components` the way an overlay enables them (`components: [...]`). */
export function render(components: string[] = []): KubeObject[] {
  if (components.length === 0) return parseObjects(kustomize(manifestsDir));
  const overlay = mkdtempSync(join(tmpdir(), 'nemu-overlay-'));
  try {
    // kustomize refuses absolute paths in resources/components: relative ones, as in an overlay.
    const lines = [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      `  - ${relative(overlay, manifestsDir)}`,
      'components:',
      ...components.map((c) => `  - ${relative(overlay, join(componentsDir, c))}`),
    ];
    writeFileSync(join(overlay, 'kustomization.yaml'), lines.join('\n') + '\n');
    return parseObjects(kustomize(overlay));
  } finally {
    rmSync(overlay, { recursive: true, force: true });
  }
}
