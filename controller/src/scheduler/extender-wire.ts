/**
 * kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1 types.go). The Go
 * structs have no json tags, so the keys are the Go field names: `Pod`, `Nodes`, `NodeNames`,
 * `FailedNodes`, `FailedAndUnresolvableNodes`, `Error`, `Host`, `Score`. `Nodes` is a
 * v1.NodeList (`{"metadata":{},"items":[…]}`) when the extender is not nodeCacheCapable;
 * `NodeNames` a list of names when it is. Scores are int64 0..10 (MaxExtenderPriority): a
 * float fails Go's decoding and the scheduler silently drops every score.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

/** The parts of a v1.Pod the extender reads. */
export interface WirePod {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    ownerReferences?: Array<{ kind?: string; name?: string; controller?: boolean }>;
  };
  spec?: {
    containers?: WireContainer[];
    initContainers?: WireContainer[];
  };
}
export interface WireContainer {
  name?: string;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
}

/** The parts of a v1.Node the extender reads (whole objects go back unchanged in a filter reply). */
export interface WireNode {
  metadata?: { name?: string };
  status?: { allocatable?: Record<string, unknown> };
  [k: string]: unknown;
}

export interface ExtenderArgs {
  Pod: WirePod;
  Nodes?: { items: WireNode[]; [k: string]: unknown } | null;
  NodeNames?: string[] | null;
}

export interface ExtenderFilterResult {
  Nodes: { metadata: Record<string, unknown>; items: WireNode[] } | null;
  NodeNames: string[] | null;
  FailedNodes: Record<string, string>;
  FailedAndUnresolvableNodes: Record<string, string>;
  Error: string;
}

export interface HostPriority {
  Host: string;
  Score: number;
}

/** kube-scheduler's MaxExtenderPriority. */
export const MAX_EXTENDER_PRIORITY = 10;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string): NemuError {
  return new NemuError(
    ErrorCodes.BAD_REQUEST,
    `not an ExtenderArgs: ${message}; kube-scheduler sends {"Pod":{…},"Nodes":{"items":[…]}} or {"Pod":{…},"NodeNames":[…]}`,
    {
      status: 400,
    },
  );
}

/** Which form the candidates came in: the reply to a filter call must use the same one. */
export type CandidateForm = 'Nodes' | 'NodeNames';

export interface Candidates {
  form: CandidateForm;
  names: string[];
  /** The Node objects, in the Nodes form (a filter reply hands back the ones that pass). */
  nodes?: WireNode[];
}

/** Checks a decoded body is an ExtenderArgs, and lists its candidate nodes. */
export function readExtenderArgs(body: unknown): { pod: WirePod; candidates: Candidates } {
  if (!isRecord(body)) throw bad('the body is not a JSON object');
  const pod = body.Pod;
  if (!isRecord(pod)) throw bad('"Pod" is missing or not an object');
  if (pod.metadata !== undefined && !isRecord(pod.metadata)) throw bad('"Pod.metadata" is not an object');
  if (pod.spec !== undefined && !isRecord(pod.spec)) throw bad('"Pod.spec" is not an object');
  const names = body.NodeNames;
  if (names !== undefined && names !== null) {
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw bad('"NodeNames" is not a list of strings');
    return { pod: pod as WirePod, candidates: { form: 'NodeNames', names } };
  }
  const list = body.Nodes;
  if (list === undefined || list === null) throw bad('neither "Nodes" nor "NodeNames" is set');
  if (!isRecord(list) || !Array.isArray(list.items)) throw bad('"Nodes" is not a NodeList ({"items":[…]})');
  const nodes: WireNode[] = [];
  for (const n of list.items) {
    if (!isRecord(n) || !isRecord(n.metadata) || typeof n.metadata.name !== 'string') throw bad('a node in "Nodes.items" has no metadata.name');
    nodes.push(n as WireNode);
  }
  return { pod: pod as WirePod, candidates: { form: 'Nodes', names: nodes.map((n) => n.metadata!.name!), nodes } };
}

/** A filter reply in the form of the request. */
export function filterResult(candidates: Candidates, passed: Set<string>, failed: Record<string, string>): ExtenderFilterResult {
  const byForm =
    candidates.form === 'NodeNames'
      ? { Nodes: null, NodeNames: candidates.names.filter((n) => passed.has(n)) }
      : { Nodes: { metadata: {}, items: (candidates.nodes ?? []).filter((n) => passed.has(n.metadata!.name!)) }, NodeNames: null };
  return { ...byForm, FailedNodes: failed, FailedAndUnresolvableNodes: {}, Error: '' };
}
