/**
 * The controller's features, plugged into the app: the admission handler (mutator chain)
 * and the REST routes each feature adds. Both entry points (cluster and local) use this.
 */
import type { AdmissionHandler } from './admission/handler.ts';
import { passThroughHandler } from './admission/handler.ts';
import type { ControllerParts } from './app.ts';
import type { Router } from './server/router.ts';

export async function createAdmission(parts: ControllerParts): Promise<AdmissionHandler> {
  return passThroughHandler(parts.log);
}

export function registerRoutes(_router: Router, _parts: ControllerParts): void {
  // Features add their /api/v1 routes here.
}
