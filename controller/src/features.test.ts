import { describe, expect, it } from 'vitest';

import type { ControllerParts } from './app.ts';
import { controllerFeatures } from './features.ts';
import { Router } from './server/router.ts';

describe('controllerFeatures', () => {
  it('refuses to add routes for a controller whose admission hook has not built the features', () => {
    const hooks = controllerFeatures();
    const parts = {} as ControllerParts;
    let code: string | undefined;
    try {
      hooks.routes(new Router(), parts);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe('NEMU_ERR_INTERNAL');
  });
});
