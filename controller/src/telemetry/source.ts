/**
 * The telemetry RecommendationSource the resources mutator asks first: synchronous, from the
 * Telemetry cache. Requests never exceed an existing limit (the apiserver would reject the
 * pod); limits themselves are left to the resize ladder and what-if.
 */
import { formatBytes, formatCpu, parseQuantity } from '../mutators/quantity.ts';
import type { ContainerTarget, Recommendation, RecommendationSource } from '../mutators/types.ts';
import type { Resources } from './engine.ts';
import type { Telemetry } from './service.ts';

/** Memory requests are rounded up to whole MiB: easier to read, and never below the recommendation. */
export function formatMemory(bytes: number): string {
  return formatBytes(Math.ceil(bytes / 2 ** 20) * 2 ** 20);
}

export function resourcesOf(m: Record<string, string>): Resources {
  const out: Resources = {};
  const cpu = parseQuantity(m.cpu);
  const memory = parseQuantity(m.memory);
  if (cpu !== undefined) out.cpu = cpu;
  if (memory !== undefined) out.memory = memory;
  return out;
}

export class TelemetrySource implements RecommendationSource {
  readonly name = 'telemetry';
  constructor(private readonly telemetry: Telemetry) {}

  recommend(target: ContainerTarget): Recommendation | { reason: string } {
    const limits = resourcesOf(target.limits);
    const answer = this.telemetry.recommendation(target.namespace, target.owner, target.container, { requests: resourcesOf(target.requests), limits });
    if ('reason' in answer) return answer;
    const r = answer.recommendation.requests;
    return {
      requests: {
        cpu: formatCpu(limits.cpu !== undefined ? Math.min(r.cpu, limits.cpu) : r.cpu),
        memory: limits.memory !== undefined && r.memory >= limits.memory ? formatBytes(limits.memory) : formatMemory(r.memory),
      },
    };
  }
}
