// Fault scenario "idle-connections": 1,000 connections to the webhook that do nothing — 400
// TLS connections that send no request, 400 TCP connections that never start TLS, 200
// HTTP/2 sessions with no stream — while reviews continue at RATE per second. Short
// timeouts are configured (idleTimeout and headersTimeout 3 s) so the row also says whether
// the server closed every one of them by itself, and how long that took.
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { until } from '#test/harness/wait.js';

import { baselineWindow, crashed, latency, peakRssMiB, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

const TIMEOUT_S = 3;

export async function idleConnectionsScenario(counts = { tls: 400, tcp: 400, h2: 200 }): Promise<FaultRow> {
  const c = await startControllerProcess(['--idle-timeout', `${TIMEOUT_S}s`, '--headers-timeout', `${TIMEOUT_S}s`, '--request-timeout', `${2 * TIMEOUT_S}s`]);
  const sockets: Socket[] = [];
  const sessions: ClientHttp2Session[] = [];
  try {
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    const base0 = await baselineWindow(load);
    const { hostname: host, port: p } = new URL(c.webhookUrl);
    const port = Number(p);
    const floodAt = Date.now();
    let open = 0;
    let closed = 0;
    let lastClosedAt = 0;
    let goaways = 0;
    const onClose = () => {
      closed++;
      lastClosedAt = Date.now();
    };
    for (let i = 0; i < counts.tls; i++) {
      const s = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      s.on('error', () => undefined)
        .once('secureConnect', () => open++)
        .once('close', onClose)
        .resume();
      sockets.push(s);
    }
    for (let i = 0; i < counts.tcp; i++) {
      const s = netConnect({ host, port });
      s.on('error', () => undefined)
        .once('connect', () => open++)
        .once('close', onClose)
        .resume();
      sockets.push(s);
    }
    for (let i = 0; i < counts.h2; i++) {
      const s = h2connect(`https://${host}:${port}`, { rejectUnauthorized: false });
      s.on('error', () => undefined)
        .once('connect', () => open++)
        .once('goaway', () => goaways++)
        .once('close', onClose);
      sessions.push(s);
    }
    const total = counts.tls + counts.tcp + counts.h2;
    await until('every idle connection open', () => open >= total || closed > 0, 60_000, 20);
    const openMs = Date.now() - floodAt;
    const openAtOnce = open - closed;
    await until('the server to close every idle connection', () => closed >= total, 60_000, 50);
    const allClosedAt = Date.now();
    await until('1 s of load after', () => Date.now() - allClosedAt > 1000, 10_000, 50);
    await load.stop();

    const base = latency(sentBetween(load.answers, base0.from, base0.to));
    const d = latency(sentBetween(load.answers, floodAt, allClosedAt));
    const closedAfter = (lastClosedAt - floodAt) / 1000;
    const met = crashed(c) === false && load.failed === 0 && closed >= total;
    return {
      scenario: `idle-connections: ${counts.tls} silent TLS + ${counts.tcp} silent TCP + ${counts.h2} idle HTTP/2 sessions to the webhook under ${RATE} reviews/s`,
      reviewsAnswered: load.answers.length,
      reviewsSent: load.answers.length + load.failed,
      crashes: crashed(c) ? 1 : 0,
      p50: d.p50,
      p99: d.p99,
      baselineP50: base.p50,
      baselineP99: base.p99,
      rssPeakMiB: peakRssMiB(c.child.pid),
      recoverSeconds: NaN,
      notes: `${openAtOnce} of ${total} open at once (opened in ${(openMs / 1000).toFixed(1)} s, from the load's own process); all ${closed} closed by the server ${closedAfter.toFixed(1)} s after the flood began (idle/headers timeout ${TIMEOUT_S} s), ${goaways} HTTP/2 GOAWAYs; target: reviews keep being answered, idle connections closed by the timeouts → ${met ? 'met' : 'NOT met'}`,
    };
  } finally {
    for (const s of sockets) s.destroy();
    for (const s of sessions) s.destroy();
    await c.kill();
  }
}
