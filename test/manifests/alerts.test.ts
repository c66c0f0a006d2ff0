// The alerts shipped in manifests/prometheus-rules.yaml, evaluated by the real promtool over
// series shaped like the controller's metrics (test/manifests/alerts.promtest.yaml).
import { describe, expect, it } from 'vitest';

import { requireTool, runTool } from '../harness/tools.ts';

describe('manifests/prometheus-rules.yaml alerts', () => {
  it('NemutatorMutationLogFailing fires after a minute of failed mutation-log writes and resolves once they stop (promtool test rules)', async () => {
    const { stdout } = await runTool(requireTool('promtool', 'prometheus'), ['test', 'rules', 'test/manifests/alerts.promtest.yaml']);
    expect(stdout).toContain('SUCCESS');
  });
});
