// `npm run dev:kube -- --kubeconfig <path> [--port <n>] [--http] [--no-controllers]`:
// runs the Kubernetes API server double until interrupted.
import { parseArgs } from 'node:util';

import { startKubeDouble } from './index.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    port: { type: 'string' },
    http: { type: 'boolean', default: false },
    'no-controllers': { type: 'boolean', default: false },
    nodes: { type: 'string' },
  },
});

const port = values.port === undefined ? 0 : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`NEMU_ERR_KUBE_DOUBLE_PORT: --port must be an integer between 0 and 65535, got "${values.port}"`);
  process.exit(2);
}

const double = await startKubeDouble({
  kubeconfigPath: values.kubeconfig,
  port,
  http: values.http,
  controllers: !values['no-controllers'],
  nodes: values.nodes ? values.nodes.split(',').filter(Boolean) : undefined,
});

console.log(`Kubernetes API server double listening on ${double.url}${double.httpUrl ? ` (and ${double.httpUrl})` : ''}`);
console.log(`kubeconfig: ${double.kubeconfigPath}`);
console.log(`try: kubectl --kubeconfig ${double.kubeconfigPath} get nodes`);

const shutdown = (): void => {
  void double.stop().then(() => process.exit(0));
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
