/**
 * Which container holds which version of which path: the version the agent last handed it
 * and the version it acknowledged. This is what `nemutator secrets status` shows.
 */
export interface Holder {
  podUid: string;
  namespace: string;
  pod: string;
  container: string;
  path: string;
  version: number;
  ackedVersion: number;
  ackedUnixMs: number;
}

export interface HolderOf {
  podUid: string;
  namespace: string;
  pod: string;
  container: string;
}

export class Holders {
  private readonly byKey = new Map<string, Holder>();

  private key(who: HolderOf, path: string): string {
    return `${who.podUid}\0${who.container}\0${path}`;
  }

  get(who: HolderOf, path: string): Holder | undefined {
    return this.byKey.get(this.key(who, path));
  }

  private holder(who: HolderOf, path: string): Holder {
    const key = this.key(who, path);
    let h = this.byKey.get(key);
    if (!h) {
      h = { ...who, path, version: 0, ackedVersion: 0, ackedUnixMs: 0 };
      this.byKey.set(key, h);
    }
    return h;
  }

  /** The container was handed `version` (a newer one is never replaced by an older). */
  served(who: HolderOf, path: string, version: number): void {
    const h = this.holder(who, path);
    if (version > h.version) h.version = version;
  }

  acked(who: HolderOf, path: string, version: number): void {
    const h = this.holder(who, path);
    h.ackedVersion = version;
    h.ackedUnixMs = Date.now();
  }

  /** Copies of the holders, of one path or all. */
  list(path?: string): Holder[] {
    return [...this.byKey.values()].filter((h) => !path || h.path === path).map((h) => ({ ...h }));
  }

  forgetPod(podUid: string): void {
    for (const [k, h] of this.byKey) if (h.podUid === podUid) this.byKey.delete(k);
  }
}
