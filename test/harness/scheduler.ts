// The scheduler extender as kube-scheduler reaches it: a controller with its extender on a
// kernel-chosen port, a client certificate signed by the controller's CA (what the
// extender's tlsConfig certFile/keyFile would hold), POSTs of raw bytes, and stand-in agents
// whose NodeReports travel the real fleet link (WebSocket + protobuf).
import { request } from 'node:https';
import { join } from 'node:path';

import type { FleetClient } from '#agent/fleet/client.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { type ClientCredentials, ensureSchedulerClientCert } from '#controller/scheduler/extender-setup.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import type { INodeReport } from '#proto/codec.js';

import { testControllerConfig } from './controller.ts';
import { standInAgent } from './fleet.ts';
import { until } from './wait.ts';

const AGENT_TOKEN = 'scheduler-test-agent-token';

export interface ExtenderReply {
  status: number;
  text: string;
  json(): unknown;
}

/** POSTs `body` (bytes as given, or JSON) to `<url>/<verb>` with the client certificate `creds`. */
export function callExtender(
  url: string,
  verb: string,
  body: string | object,
  creds: Pick<ClientCredentials, 'certPem' | 'keyPem'> | undefined,
  ca: string,
  method = 'POST',
): Promise<ExtenderReply> {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/${verb}`,
      {
        method,
        ca,
        ...(creds ? { cert: creds.certPem, key: creds.keyPem } : {}),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, json: () => JSON.parse(text) as unknown }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface ExtenderRig {
  c: RunningController;
  url: string;
  creds: ClientCredentials;
  call(verb: string, body: string | object, method?: string): Promise<ExtenderReply>;
  /** A stand-in agent for `node` reporting what `report()` gives, connected and with its first report in. */
  agent(node: string, report: () => Partial<INodeReport>): Promise<FleetClient & { reportNow(): Promise<void> }>;
  stop(): Promise<void>;
}

/**
 * A controller with its extender, `overrides` on top of the test configuration; with
 * `features`, wired as the programs wire it (the extender then reads the cluster's objects
 * when `kubeconfig` names one).
 */
export async function startExtenderRig(overrides: Record<string, unknown> = {}, opts: { features?: boolean } = {}): Promise<ExtenderRig> {
  const c = await startController(testControllerConfig(overrides), {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator('admin'),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    ...(opts.features ? controllerFeatures() : {}),
  });
  await c.scheduler.clusterReady;
  if (!c.schedulerUrl) throw new Error('the controller did not start its scheduler extender');
  const url = c.schedulerUrl;
  const creds = await ensureSchedulerClientCert(join(c.config.stateDir, 'tls'));
  const agents: FleetClient[] = [];
  let seq = 0;
  return {
    c,
    url,
    creds,
    call: (verb, body, method) => callExtender(url, verb, body, creds, c.tls.caPem, method),
    async agent(node, report) {
      const a = standInAgent(c, node, AGENT_TOKEN, {
        collect: async () => ({ nodeName: node, timeUnixMs: Date.now(), seq: ++seq, ...report() }),
      });
      agents.push(a);
      a.start();
      await until(`the first report of ${node}`, () => c.registry.get(node)?.report);
      const reportNow = async () => {
        const before = c.registry.get(node)?.reports ?? 0;
        await a.tick();
        await until(`a new report of ${node}`, () => (c.registry.get(node)?.reports ?? 0) > before);
      };
      return Object.assign(a, { reportNow });
    },
    async stop() {
      await Promise.all(agents.map((a) => a.stop()));
      await c.stop();
    },
  };
}
