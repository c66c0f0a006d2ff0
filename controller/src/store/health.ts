/**
 * Whether the store takes the writes that must not be lost (the mutation log's). The
 * mutation log reports here; `/readyz` answers 503 and the status route shows the store as
 * failing while it does not, so the apiserver's traffic goes to replicas that can log.
 */
export class StoreHealth {
  private failure: { since: Date; error: string } | undefined;

  get failing(): boolean {
    return this.failure !== undefined;
  }

  /** What the status route shows for the store. */
  describe(): string {
    return this.failure ? `failing since ${this.failure.since.toISOString()}: ${this.failure.error}` : 'open';
  }

  /** Records a failed write; true when the store was healthy until now. */
  failed(error: string): boolean {
    if (this.failure) {
      this.failure.error = error;
      return false;
    }
    this.failure = { since: new Date(), error };
    return true;
  }

  /** Records a successful write; true when the store was failing until now. */
  recovered(): boolean {
    const was = this.failing;
    this.failure = undefined;
    return was;
  }
}
