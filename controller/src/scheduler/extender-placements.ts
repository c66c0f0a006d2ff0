/**
 * Anti-herding: the pods the extender has placed on each node since that node's last report.
 * Agents report every few seconds and a new pod's usage shows only once its containers run,
 * so a burst of pods scored between two reports would all see the same "empty" node. Each
 * prioritize call remembers its pod on the node it scored best (kube-scheduler does not say
 * which node it picked; the cluster's binding, when known, moves it), and that node's facts
 * carry the pod's predicted load until a report received after the placement lists the pod
 * (its usage is then in the report) or `ttlMs` has passed.
 */
import type { INodeReport } from '#proto/codec.js';

import type { Resources } from './score.ts';

interface Placement {
  node: string;
  at: number;
  predicted: Resources;
  requests: Resources;
  namespace: string;
  name: string;
  uid: string;
  workload: string | undefined;
}

export interface PlacedLoad {
  predicted: Resources;
  requests: Resources;
  /** How many of the placed pods belong to `workload`. */
  familiars(workload: string | undefined): number;
}

/** The pods a report lists, by uid and by namespace/name, built once per report. */
const listedIn = new WeakMap<INodeReport, Set<string>>();
function listed(report: INodeReport | undefined): Set<string> {
  if (!report) return new Set();
  let s = listedIn.get(report);
  if (!s) {
    s = new Set((report.pods ?? []).flatMap((p) => [p.uid ?? '', `${p.namespace}/${p.name}`]));
    listedIn.set(report, s);
  }
  return s;
}

/** Nothing placed (shared, never changed: callers may test for it by identity). */
export const ZERO_PLACED: Resources = Object.freeze({ cpuMillis: 0, memoryBytes: 0 });
const NOTHING: PlacedLoad = { predicted: ZERO_PLACED, requests: ZERO_PLACED, familiars: () => 0 };

export class PlacementMemory {
  private readonly byPod = new Map<string, Placement>();
  private readonly byNode = new Map<string, Map<string, Placement>>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    /** Where the cluster says a pod is bound, when there is a cluster. */
    private readonly boundTo?: (namespace: string, name: string) => string | undefined,
  ) {}

  get size(): number {
    return this.byPod.size;
  }

  /** Remembers `pod` on `node`; a pod placed again (a retry) moves. */
  place(node: string, pod: Omit<Placement, 'node' | 'at'>): void {
    const key = `${pod.namespace}/${pod.name}`;
    this.forget(key);
    const p: Placement = { ...pod, node, at: this.now() };
    this.byPod.set(key, p);
    let m = this.byNode.get(node);
    if (!m) this.byNode.set(node, (m = new Map()));
    m.set(key, p);
  }

  private forget(key: string): void {
    const old = this.byPod.get(key);
    if (!old) return;
    this.byPod.delete(key);
    const m = this.byNode.get(old.node);
    m?.delete(key);
    if (m?.size === 0) this.byNode.delete(old.node);
  }

  /**
   * The load placed on `node` that its last report (received at `reportAt`) does not show yet;
   * `exclude` (`namespace/name`) is the pod being scored, whose own earlier placement does not count.
   */
  placedSince(node: string, reportAt: number | undefined, report: INodeReport | undefined, exclude?: string): PlacedLoad {
    const m = this.byNode.get(node);
    if (!m) return NOTHING;
    const now = this.now();
    const inLastReport = reportAt === undefined ? undefined : listed(report);
    const out = { cpu: 0, mem: 0, rcpu: 0, rmem: 0 };
    const kept: Placement[] = [];
    for (const [key, p] of m) {
      if (key === exclude) continue;
      const inReport = inLastReport !== undefined && reportAt! >= p.at && (inLastReport.has(key) || (p.uid !== '' && inLastReport.has(p.uid)));
      const bound = this.boundTo?.(p.namespace, p.name);
      if (inReport || now - p.at > this.ttlMs || (bound !== undefined && bound !== node)) {
        this.forget(key);
        if (bound !== undefined && bound !== node && !inReport && now - p.at <= this.ttlMs) this.place(bound, p);
        continue;
      }
      out.cpu += p.predicted.cpuMillis;
      out.mem += p.predicted.memoryBytes;
      // Once bound, the cluster's objects count its requests and its workload already.
      if (bound === node) continue;
      kept.push(p);
      out.rcpu += p.requests.cpuMillis;
      out.rmem += p.requests.memoryBytes;
    }
    return {
      predicted: { cpuMillis: out.cpu, memoryBytes: out.mem },
      requests: { cpuMillis: out.rcpu, memoryBytes: out.rmem },
      familiars: (w) => (w === undefined ? 0 : kept.filter((p) => p.workload === w).length),
    };
  }
}
