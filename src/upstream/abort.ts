/**
 * A minimal abort signal for the hot path. AbortController/AbortSignal are
 * EventTargets and cost several microseconds each to create and wire; a
 * request needs one of these, and each attempt a child. undici accepts any
 * object with `aborted`, `reason` and add/removeEventListener as a signal.
 */
export class Abort {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] | undefined;

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.listeners;
    if (!listeners) return;
    const at = listeners.indexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  }

  /** A signal aborted with this one (and on its own by `abort`), released by `dispose`. */
  child(): Abort & { dispose(): void } {
    const child = new Abort() as Abort & { dispose(): void };
    const forward = () => child.abort(this.reason);
    this.addEventListener("abort", forward);
    child.dispose = () => this.removeEventListener("abort", forward);
    if (this.aborted) child.abort(this.reason);
    return child;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (check `signal.aborted` after). */
export function sleep(ms: number, signal: Abort): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
