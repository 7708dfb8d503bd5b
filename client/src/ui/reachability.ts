/**
 * Whether this page can reach the network and the Switchboard server, as
 * one store for the whole page (React reads it with useSyncExternalStore).
 *
 * `navigator.onLine` alone is not enough (it stays true when only the
 * server is down), so the origin is probed too; the service worker lets
 * `?__probe` requests through to the network. While everything is fine the
 * probe runs rarely; once it has failed it runs every PROBE_WHEN_DOWN_MS, so
 * that the page notices recovery within a second.
 *
 * The store also knows whether a call screen is showing: a call shows its
 * own connection status (one indicator, one banner), and the page-wide
 * banner stands back while it does.
 */
const PROBE_WHEN_UP_MS = 15_000;
const PROBE_WHEN_DOWN_MS = 500;

export interface Reachability {
  /** The browser says it has a network. */
  online: boolean;
  /** The last probe of the origin answered. */
  server: boolean;
  /** A call screen shows the status instead of the page-wide banner. */
  callShowing: boolean;
}

type Listener = () => void;

const UP: Reachability = { online: true, server: true, callShowing: false };

class ReachabilityStore {
  private snap: Reachability = UP;
  private readonly listeners = new Set<Listener>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private probing = false;
  private calls = 0;

  readonly subscribe = (fn: Listener): (() => void) => {
    this.listeners.add(fn);
    if (this.listeners.size === 1) this.start();
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  };

  readonly getSnapshot = (): Reachability => this.snap;
  readonly getServerSnapshot = (): Reachability => UP;

  /** A call screen takes over the status; call the result when it goes. */
  claimForCall(): () => void {
    this.calls += 1;
    this.set({ callShowing: true });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.calls -= 1;
      this.set({ callShowing: this.calls > 0 });
    };
  }

  /** Probes now (e.g. the browser said it is online again). */
  readonly check = (): void => {
    if (this.probing) return;
    this.probing = true;
    const online = navigator.onLine !== false;
    if (!online) this.set({ online: false, server: false });
    const probe = online ? reachable() : Promise.resolve(false);
    void probe.then((server) => {
      this.probing = false;
      this.set({ online: navigator.onLine !== false, server });
      this.schedule();
    });
  };

  private start(): void {
    window.addEventListener("online", this.check);
    window.addEventListener("offline", this.check);
    this.check();
  }

  private stop(): void {
    window.removeEventListener("online", this.check);
    window.removeEventListener("offline", this.check);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.listeners.size === 0) return;
    const up = this.snap.online && this.snap.server;
    this.timer = setTimeout(this.check, up ? PROBE_WHEN_UP_MS : PROBE_WHEN_DOWN_MS);
  }

  private set(patch: Partial<Reachability>): void {
    const next = { ...this.snap, ...patch };
    if (next.online === this.snap.online && next.server === this.snap.server && next.callShowing === this.snap.callShowing) return;
    this.snap = next;
    for (const fn of this.listeners) fn();
  }
}

async function reachable(): Promise<boolean> {
  try {
    const res = await fetch(`/manifest.webmanifest?__probe=${Date.now()}`, { cache: "no-store" });
    return res.ok || res.status < 500;
  } catch {
    return false;
  }
}

export const reachability = new ReachabilityStore();
