// Completes dist/ after tsc: copies the generated protobuf code and the vendored CSI spec, and writes dist/package.json
// so the compiled programs resolve the repository's `#common/…` style aliases to compiled
// files. Node reads `imports` from the nearest package.json, so inside dist/ this file wins
// over the root one, whose targets are the TypeScript sources (run by tsx and vitest).
import { cpSync, readFileSync, writeFileSync } from 'node:fs';

const root = JSON.parse(readFileSync('package.json', 'utf8'));
const imports = {};
for (const [alias, target] of Object.entries(root.imports)) {
  // Tests are not compiled into dist/.
  if (target.startsWith('./test/')) continue;
  imports[alias] = target.replace(/\.ts$/, '.js');
}
cpSync('proto/gen', 'dist/proto/gen', { recursive: true });
// The vendored CSI spec, read next to the plugin's code.
cpSync('agent/src/csi/proto', 'dist/agent/src/csi/proto', { recursive: true });
writeFileSync('dist/package.json', `${JSON.stringify({ type: 'module', imports }, null, 2)}\n`);
