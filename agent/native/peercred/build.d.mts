/** Path of the built addon. */
export declare const ADDON: string;
/** Builds peercred.node unless it is newer than its sources; returns its path. */
export declare function buildPeercred(opts?: { force?: boolean }): string;
