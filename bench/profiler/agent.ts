// The agent side of bench/profiler, in its own process so its CPU and memory are its own:
// runs one real capture per request (the agent's capture path: bpftrace filtered by cgroup
// id, process snapshots, pclntab symbolization) and renders the four formats the controller
// serves. IPC: {type:'capture', podUid, seconds, hz, cgroupRoot} → 'attached', then 'done'.
import { readFileSync } from 'node:fs';

import { capture } from '#agent/profiler/capture.js';
import { toWire } from '#agent/profiler/handler.js';
import { fromWire } from '#controller/profiles/model.js';
import { FORMATS, renderProfile } from '#controller/profiles/render/index.js';

/** CPU seconds of waited-for children (bpftrace), from /proc/self/stat cutime + cstime. */
function childCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100; // USER_HZ
}

let peakRss = 0;
setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50).unref();

process.on('message', (msg: { type: string; podUid: string; seconds: number; hz: number; cgroupRoot: string }) => {
  if (msg.type === 'stop') process.exit(0);
  if (msg.type !== 'capture') return;
  void (async () => {
    const cpu0 = process.cpuUsage();
    const child0 = childCpuSeconds();
    const t0 = performance.now();
    peakRss = process.memoryUsage().rss;
    let attachedAt = 0;
    const r = await capture(
      { target: { podUid: msg.podUid }, seconds: msg.seconds, hz: msg.hz },
      {
        bpftracePath: 'bpftrace',
        cgroupRoot: msg.cgroupRoot,
        onProgress: (what) => {
          if (what.startsWith('sampling')) {
            attachedAt = performance.now();
            process.send!({ type: 'attached' });
          }
        },
      },
    );
    const data = fromWire(toWire(r));
    for (const f of FORMATS) renderProfile(data, f, { title: 'bench' });
    const readyAt = performance.now();
    const cpu = process.cpuUsage(cpu0);
    process.send!({
      type: 'done',
      // The window ends `seconds` after sampling started; the profile is ready once symbolized and rendered.
      readyAfterWindowMs: readyAt - (attachedAt + msg.seconds * 1000),
      symbolizeMs: r.symbolizeMs,
      agentCpuSeconds: (cpu.user + cpu.system) / 1e6,
      bpftraceCpuSeconds: childCpuSeconds() - child0,
      wallSeconds: (readyAt - t0) / 1000,
      peakRssBytes: peakRss,
      samples: data.samples.reduce((a, s) => a + s.count, 0),
      top: data.frames.find((f) => f.function === 'main.hotFunction') ? 'main.hotFunction present' : 'main.hotFunction missing',
    });
  })().catch((e: Error) => process.send!({ type: 'error', message: e.message }));
});
process.send!({ type: 'ready' });
