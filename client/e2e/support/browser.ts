/** Debian's Chromium driven by playwright-core, one context per participant. */
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
];

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/**
 * Wraps the page's WebSocket to log signaling frames (not ICE candidates,
 * SDP shortened). Plain JS source: it runs in the page as is.
 */
const TRACE_SCRIPT = `(() => {
  const Native = window.WebSocket;
  const short = (d) => String(d).replace(/"sdp":"[^"]*"/g, '"sdp":"…"').slice(0, 300);
  const skip = (d) => String(d).includes('"candidate":{');
  class Traced extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("message", (e) => { if (!skip(e.data)) console.debug("RX " + short(e.data)); });
      this.addEventListener("close", (e) => console.debug("CLOSE " + e.code + " " + e.reason));
    }
    send(data) {
      if (!skip(data)) console.debug("TX " + short(data));
      super.send(data);
    }
  }
  window.WebSocket = Traced;
})();`;

export interface Participant {
  name: string;
  context: BrowserContext;
  page: Page;
  /** Browser console lines, kept for failure reports. */
  console: string[];
}

export async function participant(
  browser: Browser,
  name: string,
  { viewport = { width: 1280, height: 800 } }: { viewport?: { width: number; height: number } } = {},
): Promise<Participant> {
  const context = await browser.newContext({ viewport });
  // Trace signaling frames (not ICE candidates) into the console log, so a
  // failure report shows what the server said.
  await context.addInitScript({ content: TRACE_SCRIPT });
  const page = await context.newPage();
  const lines: string[] = [];
  page.on("console", (m) => lines.push(`[${name}] ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`[${name}] pageerror: ${e.message}`));
  return { name, context, page, console: lines };
}

/** Joins `roomUrl` through the pre-join screen as `name`. */
export async function joinViaLink(p: Participant, roomUrl: string, timeout = 30_000): Promise<void> {
  await p.page.goto(roomUrl);
  const name = p.page.getByLabel("Your name");
  await name.fill(p.name);
  await p.page.getByRole("button", { name: "Join now" }).click();
  await p.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout });
}

/** Waits until the page shows `n` remote tiles, all with ICE connected. */
export async function waitForRemotes(p: Participant, n: number, timeout = 45_000): Promise<void> {
  await p.page.waitForFunction(
    (count) => {
      const tiles = document.querySelectorAll('[data-testid="tile"][data-local="false"]');
      return tiles.length === count && [...tiles].every((t) => t.getAttribute("data-connection") === "connected");
    },
    n,
    { timeout, polling: 250 },
  );
}

/**
 * Polls `probe` until it returns a value (not undefined) or the deadline
 * passes. For conditions that need async work in the page (getStats), which
 * `waitForFunction` cannot await.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeout = 30_000, interval = 250 } = {},
): Promise<T> {
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Frames decoded per remote peer, from getStats inbound-rtp (video). */
export function inboundVideo(p: Participant): Promise<Record<string, { framesDecoded: number; bytesReceived: number }>> {
  return p.page.evaluate(async () => {
    const sb = window.switchboard;
    return sb ? await sb.inboundVideo() : {};
  });
}

/** Waits until video from every remote peer has decoded frames. */
export function waitForDecodedVideo(p: Participant, peers: number, minFrames = 1, timeout = 45_000): Promise<Record<string, number>> {
  return until(
    `${p.name} decoding ${minFrames}+ frames from ${peers} peers`,
    async () => {
      const stats = Object.entries(await inboundVideo(p));
      if (stats.length !== peers || !stats.every(([, s]) => s.framesDecoded >= minFrames)) return undefined;
      return Object.fromEntries(stats.map(([id, s]) => [id, s.framesDecoded]));
    },
    { timeout, interval: 500 },
  );
}

/** Each participant's signaling and per-peer connection state. */
export async function describeState(ps: Participant[]): Promise<string> {
  const out: string[] = [];
  for (const p of ps) {
    try {
      const st = await p.page.evaluate(() => window.switchboard?.stats());
      out.push(`[${p.name}] ${JSON.stringify(st)}`);
    } catch (err) {
      out.push(`[${p.name}] state unavailable: ${String(err)}`);
    }
  }
  return out.join("\n");
}

export function dumpOnFailure(ps: Participant[], serverLogs: string[]): string {
  return [
    "---- browser console ----",
    ...ps.flatMap((p) => p.console.slice(-40)),
    "---- server log ----",
    ...serverLogs.slice(-60),
  ].join("\n");
}

/**
 * Starts watching decoded video in the page: every 100 ms, per remote peer,
 * when `framesDecoded` last grew and the longest time it did not. Read it
 * with `videoWatch`. Measures in the page, so test-side pauses do not count.
 */
export function startVideoWatch(p: Participant): Promise<void> {
  // Plain JS source (as TRACE_SCRIPT): it runs in the page as is.
  return p.page.evaluate(`(() => {
    const peers = {};
    const started = performance.now();
    let busy = false;
    const timer = setInterval(() => {
      const sb = window.switchboard;
      if (busy || !sb) return;
      busy = true;
      sb.inboundVideo().then((stats) => {
        const now = performance.now();
        for (const [id, s] of Object.entries(stats)) {
          const e = (peers[id] ??= { frames: s.framesDecoded, grewAt: now, maxGapMs: 0, samples: 0 });
          e.samples += 1;
          if (s.framesDecoded > e.frames) { e.frames = s.framesDecoded; e.grewAt = now; }
          e.maxGapMs = Math.max(e.maxGapMs, now - e.grewAt);
        }
      }).finally(() => { busy = false; });
    }, 100);
    window.__videoWatch = { peers, started, timer };
  })()`);
}

export interface VideoWatch {
  peers: Record<string, { frames: number; grewAt: number; maxGapMs: number; samples: number }>;
  elapsedMs: number;
}

export function videoWatch(p: Participant): Promise<VideoWatch> {
  return p.page.evaluate(`(() => {
    const w = window.__videoWatch;
    return { peers: JSON.parse(JSON.stringify(w ? w.peers : {})), elapsedMs: performance.now() - (w ? w.started : 0) };
  })()`);
}

/** A screenshot of each page into the artifacts dir, named for the step. */
export async function screenshots(ps: Participant[], dir: string, tag: string): Promise<void> {
  for (const p of ps) {
    try {
      await p.page.screenshot({ path: `${dir}/${tag}-${p.name.toLowerCase()}.png` });
    } catch {
      /* the page may be gone */
    }
  }
}

/**
 * A `step(what, fn)` for a test: runs `fn`; on failure adds the browsers'
 * state and logs and the server's (`logs()`), and with `shots` saves a
 * screenshot of each page under `dir` tagged `shots`.
 */
export function stepper(
  people: Participant[],
  logs: () => string[],
  shots?: { dir: string; tag: string },
): <T>(what: string, fn: () => Promise<T>) => Promise<T> {
  return async (what, fn) => {
    try {
      return await fn();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (shots) await screenshots(people, shots.dir, shots.tag);
      const state = await describeState(people);
      throw new Error(`${what}: ${msg}\n---- state ----\n${state}\n${dumpOnFailure(people, logs())}`);
    }
  };
}
