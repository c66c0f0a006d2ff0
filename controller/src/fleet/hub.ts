/**
 * The fleet hub: agents dial in over WSS, introduce themselves with a Hello carrying their
 * token, and after verification send NodeReports and answer Commands. Nothing but a Hello
 * is read before the agent is verified. Frames are size-limited; a garbage frame closes the
 * connection with a clear error and never takes the controller down.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { type WebSocket, WebSocketServer } from 'ws';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { decodeEnvelope, encodeEnvelope, type ICommand, type ICommandResult, type IEnvelope, type IHello, PROTOCOL_VERSION } from '#proto/codec.js';

import type { AgentAuthenticator } from './auth.ts';
import type { FleetRegistry } from './registry.ts';

/** WebSocket close codes the agent understands. */
export const CloseCodes = {
  AUTH_FAILED: 4401,
  PROTOCOL: 4400,
  REPLACED: 4409,
  SHUTDOWN: 1001,
} as const;

export interface FleetHubOptions {
  server: HttpsServer | HttpServer;
  path?: string;
  auth: AgentAuthenticator;
  registry: FleetRegistry;
  log: Logger;
  version: string;
  maxFrameBytes: number;
  helloTimeoutMs?: number;
  /**
   * A connection to the fleet port that has not upgraded to a WebSocket within this is closed
   * (default 10 s); a plain request is answered 426 and closed.
   */
  upgradeTimeoutMs?: number;
  heartbeatMs?: number;
  /** Asked of agents in the Welcome; 0 keeps theirs. */
  reportIntervalMs?: number;
  /** Called after each report is in the registry (fleet metrics, benchmarks). */
  onReport?: (node: string, receivedAt: number) => void;
}

/** One agent connection, from the upgrade on; `session` is set once its Hello is verified. */
interface AgentLink {
  ws: WebSocket;
  log: Logger;
  verifying: boolean;
  session: Session | undefined;
  helloTimer: NodeJS.Timeout | undefined;
}

interface Session {
  id: string;
  node: string;
  instanceId: string;
  ws: WebSocket;
  alive: boolean;
  pending: Map<string, { resolve: (r: ICommandResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>;
}

export class FleetHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, Session>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly opts: FleetHubOptions) {
    this.wss = new WebSocketServer({ server: opts.server, path: opts.path ?? '/fleet', maxPayload: opts.maxFrameBytes });
    this.wss.on('connection', (ws, req) => this.accept(ws, req.socket.remoteAddress ?? '?'));
    this.wss.on('error', (e) => opts.log.error({ err: e }, 'fleet hub error'));
    // Agents upgrade at once. Node gives every new connection the server's timeout and ws
    // clears it on the upgrade, so only connections that never upgrade run into it.
    opts.server.setTimeout(opts.upgradeTimeoutMs ?? 10_000);
    opts.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const body = JSON.stringify({ code: ErrorCodes.BAD_REQUEST, message: `the fleet port speaks WebSocket only: upgrade ${opts.path ?? '/fleet'}` });
      res.writeHead(426, { 'content-type': 'application/json', connection: 'close', upgrade: 'websocket' }).end(body);
      req.resume();
    });
    const every = opts.heartbeatMs ?? 15_000;
    this.heartbeat = setInterval(() => this.checkAlive(), every);
    this.heartbeat.unref();
  }

  get connectedNodes(): string[] {
    return [...this.sessions.keys()];
  }

  private accept(ws: WebSocket, peer: string): void {
    const log = this.opts.log.child({ peer });
    const link: AgentLink = { ws, log, verifying: false, session: undefined, helloTimer: undefined };
    link.helloTimer = setTimeout(() => {
      log.warn('agent sent no Hello in time; closing');
      this.fail(ws, ErrorCodes.FLEET_AUTH, 'no Hello received within the time limit', CloseCodes.AUTH_FAILED);
    }, this.opts.helloTimeoutMs ?? 5000);
    ws.on('error', (e) => log.debug({ err: e }, 'agent connection error'));
    ws.on('pong', () => {
      if (link.session) link.session.alive = true;
    });
    ws.on('close', (code) => this.onClose(link, code));
    ws.on('message', (data, isBinary) => this.onFrame(link, data, isBinary));
  }

  /** Nothing but a Hello is read until the agent is verified; frames during verification are dropped. */
  private onFrame(link: AgentLink, data: WebSocket.RawData, isBinary: boolean): void {
    const receivedAt = performance.now();
    const env = this.decode(link, data, isBinary);
    if (env === undefined) return;
    if (link.session) return this.dispatch(link, link.session, env, receivedAt);
    if (link.verifying) return; // frames sent before the Welcome are not read
    if (env.body !== 'hello' || !env.hello) {
      this.fail(link.ws, ErrorCodes.FLEET_AUTH, 'the first frame must be a Hello', CloseCodes.AUTH_FAILED);
      return;
    }
    link.verifying = true;
    void this.verifyHello(link, env.hello).catch((e: Error) => {
      link.log.error({ err: e }, 'admitting the agent failed; closing');
      link.ws.terminate();
    });
  }

  /** A binary protobuf Envelope, or undefined after failing the connection. */
  private decode(link: AgentLink, data: WebSocket.RawData, isBinary: boolean): IEnvelope | undefined {
    if (!isBinary) {
      this.fail(link.ws, ErrorCodes.FLEET_FRAME, 'text frames are not part of the protocol; send protobuf Envelopes as binary frames', CloseCodes.PROTOCOL);
      return undefined;
    }
    try {
      return decodeEnvelope(toBytes(data), this.opts.maxFrameBytes);
    } catch (e) {
      link.log.warn({ node: link.session?.node, err: (e as Error).message }, 'bad frame from agent; closing');
      this.fail(link.ws, ErrorCodes.FLEET_FRAME, (e as Error).message, CloseCodes.PROTOCOL);
      return undefined;
    }
  }

  private async verifyHello(link: AgentLink, hello: IHello): Promise<void> {
    const { ws, log } = link;
    const verdict = await this.opts.auth
      .verify({ token: hello.token ?? '', nodeName: hello.nodeName ?? '' })
      .catch((e: Error) => ({ ok: false as const, reason: `token verification failed: ${e.message}` }));
    clearTimeout(link.helloTimer);
    if (ws.readyState !== ws.OPEN) return;
    if (!verdict.ok) {
      log.warn({ node: hello.nodeName, reason: verdict.reason }, 'agent refused');
      this.fail(ws, ErrorCodes.FLEET_AUTH, verdict.reason, CloseCodes.AUTH_FAILED);
      return;
    }
    if (hello.nodeName !== verdict.node) {
      this.fail(ws, ErrorCodes.FLEET_AUTH, `the token belongs to node ${verdict.node}, not ${hello.nodeName}`, CloseCodes.AUTH_FAILED);
      return;
    }
    link.session = this.openSession(ws, verdict.node, hello);
    log.info({ node: verdict.node, agentVersion: hello.agentVersion }, 'agent connected');
  }

  /** Registers a verified agent (replacing an older link of its node) and welcomes it. */
  private openSession(ws: WebSocket, node: string, hello: IHello): Session {
    const session: Session = { id: randomUUID(), node, instanceId: hello.instanceId ?? '', ws, alive: true, pending: new Map() };
    const previous = this.sessions.get(node);
    if (previous) previous.ws.close(CloseCodes.REPLACED, 'replaced by a newer connection of the same node');
    this.sessions.set(node, session);
    this.opts.registry.connected(node, { agentVersion: hello.agentVersion ?? '', instanceId: session.instanceId, capabilities: hello.capabilities ?? [] });
    this.send(ws, {
      welcome: {
        protocolVersion: PROTOCOL_VERSION,
        controllerVersion: this.opts.version,
        sessionId: session.id,
        reportIntervalMs: this.opts.reportIntervalMs ?? 0,
        maxFrameBytes: this.opts.maxFrameBytes,
      },
    });
    return session;
  }

  /** A frame from a verified agent. */
  private dispatch(link: AgentLink, session: Session, env: IEnvelope, receivedAt: number): void {
    switch (env.body) {
      case 'report':
        if (env.report) {
          this.opts.registry.report(session.node, env.report);
          this.opts.onReport?.(session.node, receivedAt);
        }
        break;
      case 'result': {
        const id = env.result?.requestId ?? '';
        const p = session.pending.get(id);
        if (p && env.result) {
          clearTimeout(p.timer);
          session.pending.delete(id);
          p.resolve(env.result);
        }
        break;
      }
      case 'error':
        link.log.warn({ node: session.node, code: env.error?.code, message: env.error?.message }, 'agent reported an error');
        break;
      default:
        link.log.debug({ node: session.node, body: env.body }, 'unexpected frame from agent ignored');
    }
  }

  /** Pending commands fail at once; the registry hears of it unless a newer link replaced this one. */
  private onClose(link: AgentLink, code: number): void {
    clearTimeout(link.helloTimer);
    const session = link.session;
    if (!session) return;
    for (const p of session.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new NemuError(ErrorCodes.FLEET_FRAME, `the agent on ${session.node} disconnected before answering`, { status: 503 }));
    }
    if (this.sessions.get(session.node) === session) {
      this.sessions.delete(session.node);
      this.opts.registry.disconnected(session.node, session.instanceId);
    }
    link.log.info({ node: session.node, code }, 'agent disconnected');
  }

  /** Sends a command to a node's agent and waits for its result (or the deadline). */
  async command(node: string, command: Omit<ICommand, 'requestId' | 'deadlineUnixMs'>, timeoutMs: number): Promise<ICommandResult> {
    const session = this.sessions.get(node);
    if (!session) throw new NemuError(ErrorCodes.NOT_FOUND, `no agent is connected for node ${node}`, { status: 503 });
    const requestId = randomUUID();
    return new Promise<ICommandResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.pending.delete(requestId);
        reject(new NemuError(ErrorCodes.FLEET_FRAME, `the agent on ${node} did not answer within ${timeoutMs} ms`, { status: 504 }));
      }, timeoutMs);
      session.pending.set(requestId, { resolve, reject, timer });
      this.send(session.ws, { command: { ...command, requestId, deadlineUnixMs: Date.now() + timeoutMs } });
    });
  }

  private send(ws: WebSocket, env: IEnvelope): void {
    if (ws.readyState === ws.OPEN) ws.send(encodeEnvelope(env));
  }

  private fail(ws: WebSocket, code: string, message: string, closeCode: number): void {
    this.send(ws, { error: { code, message } });
    ws.close(closeCode, closeReason(message));
  }

  private checkAlive(): void {
    for (const s of this.sessions.values()) {
      if (!s.alive) {
        this.opts.log.warn({ node: s.node }, 'agent missed its heartbeat; dropping the connection');
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const s of this.sessions.values()) s.ws.close(CloseCodes.SHUTDOWN, 'controller shutting down');
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

/**
 * A close frame's reason holds at most 123 bytes of UTF-8 (RFC 6455 §5.5), and ws throws past
 * that: a reason quoting a claimed node name of multi-byte characters did, taking the
 * controller down. The whole message still goes in the error frame before it.
 */
function closeReason(message: string): string {
  let reason = message.slice(0, 120);
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

function toBytes(data: unknown): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data as Buffer[]);
  return new Uint8Array(data as ArrayBuffer);
}
