/**
 * The agent's end of the fleet link. It dials the controller over WSS with the controller's
 * CA pinned, says Hello with its token, then sends a NodeReport every interval and answers
 * Commands. When the link drops it reconnects with exponential backoff and full jitter.
 * Reports wait in a bounded queue while the controller is slow or away (the oldest are
 * dropped first); command results are never dropped.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';

import { ErrorCodes } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { decodeEnvelope, encodeEnvelope, type ICommand, type ICommandResult, type IEnvelope, type INodeReport, PROTOCOL_VERSION } from '#proto/codec.js';

export type CommandHandler = (command: ICommand) => Promise<Omit<ICommandResult, 'requestId'>>;

export interface FleetClientOptions {
  url: string;
  /** PEM of the CA to pin; empty only for ws:// (tests). */
  ca: string;
  /** Read on every connect: projected tokens are rotated by the kubelet. */
  token: () => string | Promise<string>;
  nodeName: string;
  version: string;
  capabilities?: string[];
  log: Logger;
  collect: () => Promise<INodeReport>;
  reportIntervalMs: number;
  heartbeatMs: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  queueReports: number;
  maxFrameBytes: number;
  onCommand?: CommandHandler;
  /** Bytes buffered in the socket above which the controller counts as slow. */
  highWaterBytes?: number;
  random?: () => number;
}

export type LinkState = 'connecting' | 'authenticating' | 'connected' | 'backoff' | 'stopped';

/** Full-jitter exponential backoff: uniform in [0, min(max, min·2^attempt)]. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

/**
 * The masking key of every frame over wss. Masking (RFC 6455 §10.3) keeps proxies from
 * misreading bytes a browser script chose; inside TLS no intermediary reads the frames, so it
 * protects nothing here. ws copies and XORs a frame in JavaScript unless the key is all zeros:
 * for a 200-pod report (~150 KB) that was ~7 ms of CPU per send. Plain ws:// keeps random keys.
 */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

export class FleetClient extends EventEmitter {
  state: LinkState = 'stopped';
  readonly instanceId = randomUUID();
  /** Reports dropped because the queue was full. */
  droppedReports = 0;
  sentReports = 0;
  private ws: WebSocket | undefined;
  private reports: INodeReport[] = [];
  private results: ICommandResult[] = [];
  private attempt = 0;
  private reportTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  private stopped = true;
  private collecting = false;
  private intervalMs: number;

  constructor(private readonly opts: FleetClientOptions) {
    super();
    this.intervalMs = opts.reportIntervalMs;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.reportTimer = setInterval(() => void this.tick(), this.intervalMs);
    void this.connect();
  }

  /** Collects a report now and sends it (or queues it). */
  async tick(): Promise<void> {
    if (this.collecting || this.stopped) return;
    this.collecting = true;
    try {
      const report = await this.opts.collect();
      this.reports.push(report);
      while (this.reports.length > this.opts.queueReports) {
        this.reports.shift();
        this.droppedReports++;
      }
      this.flush();
    } catch (e) {
      this.opts.log.warn({ err: e }, 'collecting the node report failed; will retry next interval');
    } finally {
      this.collecting = false;
    }
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.state = 'connecting';
    const token = await this.readToken();
    // stop() may have run while the token was being read: dialling now would leave a link
    // open that nothing closes.
    if (this.stopped) return;
    if (token === undefined) return this.scheduleReconnect();
    const ws = this.dial();
    this.ws = ws;
    const link = { welcomed: false };
    ws.on('open', () => this.sayHello(token));
    ws.on('ping', () => (this.lastHeard = Date.now()));
    ws.on('pong', () => (this.lastHeard = Date.now()));
    ws.on('message', (data, isBinary) => this.onFrame(ws, link, data, isBinary));
    ws.on('error', (e) => this.opts.log.debug({ err: e.message }, 'fleet link error'));
    ws.on('close', (code, reason) => this.onClose(ws, code, reason));
  }

  /** The agent token, read afresh; undefined (logged) when it cannot be read. */
  private async readToken(): Promise<string | undefined> {
    try {
      return await this.opts.token();
    } catch (e) {
      this.opts.log.error({ err: (e as Error).message }, 'cannot read the agent token; retrying');
      return undefined;
    }
  }

  private dial(): WebSocket {
    return new WebSocket(this.opts.url, {
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      ...(this.opts.url.startsWith('wss:') ? { generateMask: zeroMask } : {}),
      maxPayload: this.opts.maxFrameBytes,
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
  }

  private sayHello(token: string): void {
    this.state = 'authenticating';
    this.lastHeard = Date.now();
    this.sendNow({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        nodeName: this.opts.nodeName,
        agentVersion: this.opts.version,
        token,
        instanceId: this.instanceId,
        capabilities: this.opts.capabilities ?? ['metrics'],
      },
    });
  }

  /** One frame from the controller; commands count only on a link the controller welcomed. */
  private onFrame(ws: WebSocket, link: { welcomed: boolean }, data: WebSocket.RawData, isBinary: boolean): void {
    this.lastHeard = Date.now();
    if (!isBinary) return;
    let env;
    try {
      env = decodeEnvelope(Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), this.opts.maxFrameBytes);
    } catch (e) {
      this.opts.log.warn({ err: (e as Error).message }, 'bad frame from the controller; reconnecting');
      ws.terminate();
      return;
    }
    if (env.body === 'welcome') {
      link.welcomed = true;
      this.onWelcome(env.welcome);
    } else if (env.body === 'error') {
      this.opts.log.error({ code: env.error?.code, message: env.error?.message }, 'the controller refused or reported an error');
      this.emit('refused', env.error);
    } else if (env.body === 'command' && env.command && link.welcomed) {
      void this.handleCommand(env.command);
    }
  }

  private onWelcome(welcome: IEnvelope['welcome']): void {
    this.state = 'connected';
    this.attempt = 0;
    const asked = welcome?.reportIntervalMs ?? 0;
    if (asked > 0 && asked !== this.intervalMs) this.setInterval(asked);
    this.opts.log.info({ controller: welcome?.controllerVersion, session: welcome?.sessionId }, 'connected to the controller');
    this.emit('connected');
    this.startHeartbeat();
    this.flush();
    void this.tick();
  }

  private onClose(ws: WebSocket, code: number, reason: Buffer): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.stopHeartbeat();
    if (this.stopped) return;
    this.opts.log.warn({ code, reason: reason.toString() }, 'fleet link closed; reconnecting');
    this.emit('disconnected', code);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.state = 'backoff';
    const delay = backoffDelay(this.attempt++, this.opts.reconnectMinMs, this.opts.reconnectMaxMs, this.opts.random);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private async handleCommand(command: ICommand): Promise<void> {
    const requestId = command.requestId ?? '';
    let result: ICommandResult;
    if (command.deadlineUnixMs && Number(command.deadlineUnixMs) < Date.now()) {
      return; // the controller has given up already
    }
    try {
      if (!this.opts.onCommand) throw new Error(`this agent does not handle ${command.kind ?? 'unknown'} commands`);
      result = { ...(await this.opts.onCommand(command)), requestId };
    } catch (e) {
      result = { requestId, error: { code: (e as { code?: string }).code ?? ErrorCodes.INTERNAL, message: (e as Error).message, requestId } };
    }
    this.results.push(result);
    this.flush();
  }

  private flush(): void {
    const ws = this.ws;
    if (!ws || this.state !== 'connected' || ws.readyState !== WebSocket.OPEN) return;
    // Results first, and always: they answer someone who is waiting.
    while (this.results.length > 0) this.sendNow({ result: this.results.shift()! });
    const high = this.opts.highWaterBytes ?? 1024 * 1024;
    while (this.reports.length > 0 && ws.bufferedAmount < high) {
      this.sendNow({ report: this.reports.shift()! });
      this.sentReports++;
    }
  }

  private sendNow(env: IEnvelope): void {
    this.ws?.send(encodeEnvelope(env));
  }

  private setInterval(ms: number): void {
    this.intervalMs = ms;
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.reportTimer = setInterval(() => void this.tick(), ms);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      if (Date.now() - this.lastHeard > 2 * this.opts.heartbeatMs) {
        this.opts.log.warn('the controller stopped answering; dropping the link');
        ws.terminate();
        return;
      }
      ws.ping();
    }, this.opts.heartbeatMs);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    if (this.reportTimer) clearInterval(this.reportTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = undefined;
    if (ws && ws.readyState === WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'agent stopping');
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    } else ws?.terminate();
  }
}
