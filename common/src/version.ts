import { existsSync, readFileSync } from 'node:fs';

/** The version in package.json: one source of truth for the controller, the agent and the CLI. */
function readVersion(): string {
  // From the sources (common/src/) or the build (dist/common/src/).
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(url)) return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  }
  return '0.0.0-unknown';
}

export const VERSION: string = readVersion();
